# prefork-demo under the prefork master. An application's image builds the same way:
# replace the demo with your worker binary in the last stage's CMD.

FROM debian:12 AS build
COPY . /src
RUN /src/tools/setup \
 && cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build -j "$(nproc)" \
 && cmake --install /build --prefix /opt/prefork

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libboost-json1.81.0 libboost-filesystem1.81.0 libtomlplusplus3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin prefork
COPY --from=build /opt/prefork/bin/ /usr/local/bin/
USER prefork
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/prefork"]
CMD ["--bind", "0.0.0.0:8080", "--", "/usr/local/bin/prefork-demo"]
