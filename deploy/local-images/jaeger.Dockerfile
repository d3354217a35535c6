# Stand-in for `jaegertracing/jaeger:2.12.0` (Jaeger v2 all-in-one, in-memory storage):
# the Jaeger built by scripts/build-tools.sh from tools/jaeger (v1.75.0 = v2.12.0), with the
# Jaeger UI laid out beside it, so http://localhost:16686 is the real UI, and our
# tools/jaeger/config.template.yaml (OTLP on 4317 and 4318, the UI and query API on 16686).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY jaeger /usr/local/bin/jaeger
COPY config.yaml /etc/jaeger/config.yaml
COPY jaeger-ui /usr/share/jaeger-ui
ENV JAEGER_LISTEN_HOST=0.0.0.0 \
    JAEGER_UI_ASSETS=/usr/share/jaeger-ui \
    JAEGER_LOG_LEVEL=info
EXPOSE 4317 4318 16686 16685
ENTRYPOINT ["/usr/local/bin/jaeger", "--config", "/etc/jaeger/config.yaml"]
