//! The service's mails, in French (the app is French): plain text and HTML, the same words.
//! Links are absolute (`PUBLIC_BASE_URL`); every name shown in HTML is escaped.

use super::{MailKind, Outgoing};

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A French duration: `48 heures`, `30 minutes`.
pub fn duration_fr(d: std::time::Duration) -> String {
    let minutes = d.as_secs().div_ceil(60).max(1);
    if minutes % 60 == 0 {
        let hours = minutes / 60;
        format!("{hours} heure{}", if hours > 1 { "s" } else { "" })
    } else {
        format!("{minutes} minute{}", if minutes > 1 { "s" } else { "" })
    }
}

/// The role as a French noun.
pub fn role_fr(role: &str) -> &'static str {
    match role {
        "editor" => "éditeur (vous pourrez proposer des modifications)",
        _ => "lecteur (vous pourrez consulter l'arbre)",
    }
}

fn html_page(paragraphs: &[String], link: Option<(&str, &str)>, footer: &str) -> String {
    let mut body = String::new();
    for p in paragraphs {
        body.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    if let Some((label, href)) = link {
        body.push_str(&format!(
            "<p><a href=\"{href}\" style=\"display:inline-block;padding:10px 18px;background:#2f6b4f;color:#fff;border-radius:6px;text-decoration:none\">{label}</a></p>\n<p style=\"font-size:13px;color:#555\">Si le bouton ne fonctionne pas, copiez ce lien dans votre navigateur&nbsp;:<br>{href}</p>\n",
            label = escape(label),
            href = escape(href),
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>AÏLA</title></head>\n<body style=\"font-family:sans-serif;line-height:1.5;color:#222;max-width:560px\">\n<h2>AÏLA</h2>\n{body}<p style=\"font-size:13px;color:#555\">{}</p>\n</body></html>\n",
        escape(footer)
    )
}

fn text_body(paragraphs: &[String], link: Option<&str>, footer: &str) -> String {
    let mut out = String::from("Bonjour,\n\n");
    for p in paragraphs {
        out.push_str(p);
        out.push_str("\n\n");
    }
    if let Some(link) = link {
        out.push_str(link);
        out.push_str("\n\n");
    }
    out.push_str(footer);
    out.push_str("\n\n-- \nAÏLA, l'arbre généalogique familial\n");
    out
}

fn mail(
    kind: MailKind,
    to: &str,
    subject: &str,
    paragraphs: Vec<String>,
    link: Option<(&str, &str)>,
    footer: &str,
) -> Outgoing {
    let mut html_paragraphs = vec!["Bonjour,".to_string()];
    html_paragraphs.extend(paragraphs.iter().cloned());
    Outgoing {
        kind,
        to: to.to_string(),
        subject: subject.to_string(),
        text: text_body(&paragraphs, link.map(|(_, href)| href), footer),
        html: html_page(&html_paragraphs, link, footer),
    }
}

/// The verification link of a new account.
pub fn verify_email(to: &str, link: &str, valid_for: std::time::Duration) -> Outgoing {
    mail(
        MailKind::VerifyEmail,
        to,
        "Confirmez votre adresse e-mail - AÏLA",
        vec![
            "Bienvenue sur AÏLA ! Pour confirmer que cette adresse e-mail est bien la vôtre, ouvrez le lien ci-dessous.".into(),
            format!(
                "Ce lien est valable {} et ne peut servir qu'une fois.",
                duration_fr(valid_for)
            ),
        ],
        Some(("Confirmer mon adresse", link)),
        "Si vous n'avez pas créé de compte sur AÏLA, ignorez ce message.",
    )
}

/// An invitation to an address that has no account yet: register in the app.
pub fn invite_register(to: &str, owner: &str, role: &str, app: &str) -> Outgoing {
    mail(
        MailKind::InviteRegister,
        to,
        &format!("{owner} vous invite sur son arbre généalogique - AÏLA"),
        vec![
            format!(
                "{owner} vous invite à rejoindre son arbre généalogique sur AÏLA en tant que {}.",
                role_fr(role)
            ),
            "Créez votre compte avec cette adresse e-mail, puis confirmez-la grâce au message que vous recevrez : l'arbre apparaîtra alors dans « Partagés avec moi ».".into(),
        ],
        Some(("Ouvrir AÏLA", app)),
        "Si vous ne connaissez pas cette personne, ignorez ce message.",
    )
}

/// An invitation to an account whose address is not verified yet: the verification link
/// accepts the invitation.
pub fn invite_verify(
    to: &str,
    owner: &str,
    role: &str,
    link: &str,
    valid_for: std::time::Duration,
) -> Outgoing {
    mail(
        MailKind::InviteVerify,
        to,
        &format!("{owner} partage son arbre généalogique avec vous - AÏLA"),
        vec![
            format!(
                "{owner} vous invite à rejoindre son arbre généalogique sur AÏLA en tant que {}.",
                role_fr(role)
            ),
            format!(
                "Pour accepter, confirmez votre adresse e-mail avec le lien ci-dessous (valable {}, une seule fois).",
                duration_fr(valid_for)
            ),
        ],
        Some(("Confirmer et accepter", link)),
        "Si vous ne connaissez pas cette personne, ignorez ce message.",
    )
}

/// An invitation to a verified account: a notice (the tree is shared already).
pub fn invite_notice(to: &str, owner: &str, role: &str, app: &str) -> Outgoing {
    mail(
        MailKind::InviteNotice,
        to,
        &format!("{owner} partage son arbre généalogique avec vous - AÏLA"),
        vec![
            format!(
                "{owner} a partagé son arbre généalogique avec vous sur AÏLA en tant que {}.",
                role_fr(role)
            ),
            "Vous le trouverez dans « Partagés avec moi ».".into(),
        ],
        Some(("Ouvrir AÏLA", app)),
        "Si vous ne connaissez pas cette personne, vous pouvez ignorer ce message.",
    )
}

/// A password-reset link.
pub fn password_reset(to: &str, link: &str, valid_for: std::time::Duration) -> Outgoing {
    mail(
        MailKind::PasswordReset,
        to,
        "Réinitialisation de votre mot de passe - AÏLA",
        vec![
            "Vous avez demandé à réinitialiser le mot de passe de votre compte AÏLA. Ouvrez le lien ci-dessous pour en choisir un nouveau.".into(),
            format!(
                "Ce lien est valable {} et ne peut servir qu'une fois. Le nouveau mot de passe déconnecte tous vos appareils.",
                duration_fr(valid_for)
            ),
        ],
        Some(("Choisir un nouveau mot de passe", link)),
        "Si vous n'avez rien demandé, ignorez ce message : votre mot de passe reste inchangé.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_are_escaped_and_links_present_in_both_parts() {
        let m = invite_register("b@x.org", "<Alice & Co>", "editor", "https://app.example/");
        assert!(m.html.contains("&lt;Alice &amp; Co&gt;"), "{}", m.html);
        assert!(!m.html.contains("<Alice"));
        assert!(m.text.contains("<Alice & Co>"));
        assert!(m.text.contains("https://app.example/") && m.html.contains("https://app.example/"));
        assert!(m.subject.contains("vous invite"));
    }

    #[test]
    fn durations_read_in_french() {
        assert_eq!(duration_fr(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(duration_fr(Duration::from_secs(48 * 3600)), "48 heures");
        assert_eq!(duration_fr(Duration::from_secs(3600)), "1 heure");
        assert_eq!(duration_fr(Duration::from_millis(1)), "1 minute");
    }
}
