# prefork-demo under the prefork master, with prefork as PID 1.
#
#   docker build -t prefork .
#   docker run --rm -p 8080:8080 prefork
#
# An application's image builds on the same pattern: build your worker against the
# installed prefork (find_package(prefork)), copy it into the runtime stage, and name it
# in CMD (or in a configuration file: CMD ["--config", "/etc/prefork/prefork.toml"]).

FROM debian:12 AS build
COPY . /src
RUN /src/tools/setup build \
 && cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build -j "$(nproc)" \
 && cmake --install /build --prefix /opt/prefork

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libboost-json1.81.0 libboost-filesystem1.81.0 libtomlplusplus3 libdw1 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin prefork
COPY --from=build /opt/prefork/bin/ /usr/local/bin/
USER prefork
# The admin endpoint, for the health check and preforkctl (loopback only: it has no
# authentication).
ENV PREFORK_ADMIN=127.0.0.1:9000
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["preforkctl", "health"]
ENTRYPOINT ["/usr/local/bin/prefork"]
CMD ["--bind", "0.0.0.0:8080", "--graceful-timeout", "20", "--", "/usr/local/bin/prefork-demo"]
