# Stand-in for `mongo:7.0` (no registry reachable here): FerretDB v1.24.2 with its SQLite
# backend (tools/ferretdb), speaking the MongoDB wire protocol on 27017, its data in
# /data/db like mongod's. `mongosh` is the stand-in of tools/ferretdb/mongosh: it answers
# the compose healthcheck's `db.adminCommand('ping').ok` and nothing else.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY ferretdb /usr/local/bin/ferretdb
COPY mongosh /usr/local/bin/mongosh
RUN mkdir -p /data/db
VOLUME /data/db
EXPOSE 27017
# The wrapper logs at warn; `command: ["-log-level", "info"]` shows every connection.
ENTRYPOINT ["/usr/local/bin/ferretdb", "-listen-addr", "0.0.0.0:27017", "-data-dir", "/data/db"]
CMD ["-log-level", "warn"]
