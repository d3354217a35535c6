# Stand-in for `axllent/mailpit:v1.33.1`: the Mailpit built by scripts/build-tools.sh from
# tools/mailpit (the same version). SMTP on 1025, HTTP API and web page on 8025.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY mailpit /usr/local/bin/mailpit
EXPOSE 1025 8025
ENTRYPOINT ["/usr/local/bin/mailpit"]
# No version check: nothing in the stack talks to addresses outside the machine.
CMD ["--smtp", "0.0.0.0:1025", "--listen", "0.0.0.0:8025", "--disable-version-check"]
