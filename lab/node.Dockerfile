# A lab worker node: Debian bookworm with Debian's docker.io (dockerd,
# containerd, runc), iptables, socat and tini, debootstrapped by lab/cluster-up
# from Debian's archive (no Docker Hub). See lab/node-entrypoint.
ARG BASE=tagmatrix-lab/debian:bookworm-node
FROM ${BASE}
COPY node-entrypoint /usr/local/bin/node-entrypoint
# The node's image store; lab/cluster-up mounts a named volume here (overlay2
# cannot sit on the container's own overlay root).
VOLUME /var/lib/docker
LABEL org.tagmatrix.lab=node
ENTRYPOINT ["tini", "--", "/usr/local/bin/node-entrypoint"]
