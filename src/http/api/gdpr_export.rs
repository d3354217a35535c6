//! The body of `GET /api/gdpr/export`, written while it is read: the caller's account, then
//! each section (persons, links, collaborations both ways, contributions both ways,
//! notifications) a page at a time in `_id` order. The service holds one page, never the
//! whole export: its memory does not grow with the size of the tree.
//!
//! The first page is read before the answer starts, so a database that is down gives the
//! usual 503 + `Retry-After`. A failure after that can no longer change the status: the
//! body ends there, before the document's closing brackets, so what the client holds never
//! parses as a whole export (and the cause is logged).

use bson::Document;
use bson::doc;
use bson::oid::ObjectId;
use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::collaborators::CollaboratorOut;
use super::contributions::ContributionOut;
use super::gdpr::GdprExport;
use super::links::LinkOut;
use super::notifications::NotificationOut;
use super::persons::PersonOut;
use crate::db::{DbError, Gateway};
use crate::repo::collaborators::{COLLABORATORS, CollaboratorDoc};
use crate::repo::contributions::{CONTRIBUTIONS, ContributionDoc};
use crate::repo::find_page;
use crate::repo::links::{FAMILY_LINKS, LinkDoc};
use crate::repo::notifications::{NOTIFICATIONS, NotificationDoc};
use crate::repo::persons::{PERSONS, PersonDoc};

/// Documents read per database call (and the most the service holds at once).
pub const PAGE: i64 = 500;

/// The export's lists, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Persons,
    FamilyLinks,
    Collaborators,
    SharedWithMe,
    ContributionsMade,
    ContributionsReceived,
    Notifications,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::Persons,
        Section::FamilyLinks,
        Section::Collaborators,
        Section::SharedWithMe,
        Section::ContributionsMade,
        Section::ContributionsReceived,
        Section::Notifications,
    ];

    /// The field of [`GdprExport`] the section fills.
    fn key(self) -> &'static str {
        match self {
            Section::Persons => "persons",
            Section::FamilyLinks => "family_links",
            Section::Collaborators => "collaborators",
            Section::SharedWithMe => "shared_with_me",
            Section::ContributionsMade => "contributions_made",
            Section::ContributionsReceived => "contributions_received",
            Section::Notifications => "notifications",
        }
    }
}

/// Whose data is exported.
#[derive(Clone, Debug)]
pub struct Owner {
    /// User id (hex).
    pub id: String,
    /// Email, lower case (invitations are addressed to it).
    pub email: String,
}

/// One page of a section: its items as comma-separated JSON, and where to go on from.
struct Page {
    json: Vec<u8>,
    /// The last item's `_id` when the page was full (more may follow), else `None`.
    next: Option<ObjectId>,
}

/// Reads one page of `collection` and writes each document as the API shows it.
async fn read<D>(
    gw: &Gateway,
    collection: &'static str,
    filter: Document,
    after: Option<ObjectId>,
    id: fn(&D) -> ObjectId,
    show: fn(D) -> Option<serde_json::Value>,
) -> Result<Page, DbError>
where
    D: DeserializeOwned + Send + Sync + Unpin,
{
    let docs: Vec<D> = find_page(gw, collection, filter, after, PAGE).await?;
    let next = match docs.last() {
        Some(last) if docs.len() as i64 == PAGE => Some(id(last)),
        _ => None,
    };
    let mut json = Vec::new();
    for (i, d) in docs.into_iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        let value = show(d).unwrap_or(serde_json::Value::Null);
        // A `Value` always writes (its map keys are strings).
        serde_json::to_writer(&mut json, &value).unwrap_or_default();
    }
    Ok(Page { json, next })
}

/// One page of `section` for `owner`, after `after`.
async fn read_section(
    gw: &Gateway,
    owner: &Owner,
    section: Section,
    after: Option<ObjectId>,
) -> Result<Page, DbError> {
    let me = owner.id.as_str();
    match section {
        Section::Persons => {
            let show = |d: PersonDoc| PersonOut::from(d).to_json();
            read(gw, PERSONS, doc! { "user_id": me }, after, |d| d.id, show).await
        }
        Section::FamilyLinks => {
            let show = |d: LinkDoc| LinkOut::from(d).to_json();
            read(
                gw,
                FAMILY_LINKS,
                doc! { "user_id": me },
                after,
                |d| d.id,
                show,
            )
            .await
        }
        Section::Collaborators => {
            let show = |d: CollaboratorDoc| CollaboratorOut::from(d).to_json();
            let filter = doc! { "tree_owner_id": me };
            read(gw, COLLABORATORS, filter, after, |d| d.id, show).await
        }
        Section::SharedWithMe => {
            let show = |d: CollaboratorDoc| CollaboratorOut::from(d).to_json();
            let filter = doc! { "$or": [ { "user_id": me }, { "email": &owner.email } ] };
            read(gw, COLLABORATORS, filter, after, |d| d.id, show).await
        }
        Section::ContributionsMade => {
            let show = |d: ContributionDoc| ContributionOut::from(d).to_json();
            let filter = doc! { "contributor_id": me };
            read(gw, CONTRIBUTIONS, filter, after, |d| d.id, show).await
        }
        Section::ContributionsReceived => {
            let show = |d: ContributionDoc| ContributionOut::from(d).to_json();
            let filter = doc! { "tree_owner_id": me };
            read(gw, CONTRIBUTIONS, filter, after, |d| d.id, show).await
        }
        Section::Notifications => {
            let show = |d: NotificationDoc| NotificationOut::from(d).to_json();
            read(
                gw,
                NOTIFICATIONS,
                doc! { "user_id": me },
                after,
                |d| d.id,
                show,
            )
            .await
        }
    }
}

/// Where the writer is: the section it is in and the `_id` to go on after.
struct Cursor {
    gw: Gateway,
    owner: Owner,
    section: usize,
    after: Option<ObjectId>,
    /// The next item written is not the section's first (a comma goes before it).
    wrote_items: bool,
    exported_at: String,
    /// The request's span, so each page's database span has the request as parent.
    span: tracing::Span,
}

impl Cursor {
    /// Writes `page` into `chunk` and moves on: to the next page, the next section, or the
    /// end of the document (`true` when the document is complete).
    fn write(&mut self, page: Page, chunk: &mut Vec<u8>) -> bool {
        if !page.json.is_empty() {
            if self.wrote_items {
                chunk.push(b',');
            }
            chunk.extend_from_slice(&page.json);
            self.wrote_items = true;
        }
        if page.next.is_some() {
            self.after = page.next;
            return false;
        }
        chunk.push(b']');
        self.section += 1;
        self.after = None;
        self.wrote_items = false;
        match Section::ALL.get(self.section) {
            Some(next) => {
                open_section(chunk, *next);
                false
            }
            None => {
                chunk.extend_from_slice(b",\"exported_at\":");
                let at = serde_json::Value::String(self.exported_at.clone());
                serde_json::to_writer(&mut *chunk, &at).unwrap_or_default();
                chunk.push(b'}');
                true
            }
        }
    }
}

fn open_section(chunk: &mut Vec<u8>, section: Section) {
    chunk.extend_from_slice(b",\"");
    chunk.extend_from_slice(section.key().as_bytes());
    chunk.extend_from_slice(b"\":[");
}

/// The export answer: `{"user":...` and the first page, already read; the rest is read as
/// the client takes it. Described in the API as [`GdprExport`].
pub struct StreamedExport {
    first_chunk: Vec<u8>,
    cursor: Option<Cursor>,
}

impl StreamedExport {
    /// Reads the first page of `owner`'s export (so an unusable database answers 503
    /// before anything is sent) and prepares the rest.
    pub async fn start(
        gw: Gateway,
        owner: Owner,
        user: serde_json::Value,
        exported_at: String,
    ) -> Result<Self, DbError> {
        let first = read_section(&gw, &owner, Section::ALL[0], None).await?;
        let mut cursor = Cursor {
            gw,
            owner,
            section: 0,
            after: None,
            wrote_items: false,
            exported_at,
            span: tracing::Span::current(),
        };
        let mut first_chunk = b"{\"user\":".to_vec();
        serde_json::to_writer(&mut first_chunk, &user).unwrap_or_default();
        open_section(&mut first_chunk, Section::ALL[0]);
        let done = cursor.write(first, &mut first_chunk);
        Ok(Self {
            first_chunk,
            cursor: (!done).then_some(cursor),
        })
    }
}

/// The next chunk of the body, or `None` after the last.
async fn next_chunk(
    cursor: Option<Cursor>,
) -> Option<(Result<Vec<u8>, std::io::Error>, Option<Cursor>)> {
    let mut cursor = cursor?;
    let section = Section::ALL[cursor.section];
    let span = cursor.span.clone();
    match read_section(&cursor.gw, &cursor.owner, section, cursor.after)
        .instrument(span)
        .await
    {
        Ok(page) => {
            let mut chunk = Vec::new();
            let done = cursor.write(page, &mut chunk);
            Some((Ok(chunk), (!done).then_some(cursor)))
        }
        Err(err) => {
            tracing::warn!(
                section = section.key(),
                "GDPR export cut short, the client got an incomplete document: {err}"
            );
            let cut = std::io::Error::other(format!("export cut short: {err}"));
            Some((Err(cut), None))
        }
    }
}

impl IntoResponse for StreamedExport {
    fn into_response(self) -> Response {
        let first = futures::stream::once(futures::future::ready(Ok(self.first_chunk)));
        let rest = futures::stream::unfold(self.cursor, next_chunk);
        let stream = futures::StreamExt::chain(first, rest);
        Response::builder()
            .content_type(<Json<bool> as Payload>::CONTENT_TYPE)
            .body(Body::from_bytes_stream(stream))
    }
}

impl ApiResponse for StreamedExport {
    fn meta() -> MetaResponses {
        <Json<GdprExport> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        GdprExport::register(registry);
    }
}
