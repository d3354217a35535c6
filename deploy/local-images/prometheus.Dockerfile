# Stand-in for `prom/prometheus`: Debian's `prometheus` package (2.42 in bookworm), started
# the way the public image starts it: the configuration at /etc/prometheus/prometheus.yml
# (docker-compose.yml mounts observability/prometheus.yml there), the data in /prometheus.
# docker-compose.yml gives the command line (it turns exemplar storage on).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
VOLUME /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
