# A lab stand-in for an official python:<X.Y>-slim image (tagmatrix test and
# demo fixture, NOT an official image). Built by lab/up from a debootstrap
# root filesystem and one of the machine's own CPython builds, laid out like
# the official images: the interpreter and pip first on PATH in /usr/local/bin.
ARG BASE
FROM ${BASE}
ARG PREFIX
ARG VERSION
ADD python.tar /
# Containers here have no internet: pip and uv install from the lab's package
# index mirror on the Docker bridge gateway, as a company's machines would.
COPY pip.conf /etc/pip.conf
COPY uv.toml /etc/uv/uv.toml
RUN set -eu; \
    if [ -n "$PREFIX" ]; then \
        ln -s "$PREFIX/bin/python3" /usr/local/bin/python3; \
        ln -s "$PREFIX/bin/pip3" /usr/local/bin/pip3; \
    else \
        # Debian's python3: pip from Debian's own wheel into /usr/local, as
        # the official images have it, and no PEP 668 marker. (Not --prefix:
        # Debian's python3 finds /usr/local/lib/python3.X/dist-packages only.)
        rm -f /usr/lib/python3*/EXTERNALLY-MANAGED; \
        whl=$(ls /usr/share/python-wheels/pip-*.whl); \
        python3 "$whl/pip" install -q --no-index --root-user-action=ignore "$whl"; \
        ln -s /usr/bin/python3 /usr/local/bin/python3; \
    fi; \
    ln -s python3 /usr/local/bin/python; \
    ln -sf pip3 /usr/local/bin/pip; \
    # The official images ship a current pip (pip >= 25.1 knows --group).
    python3 -m pip install -q --no-cache-dir --root-user-action=ignore \
        --disable-pip-version-check --upgrade pip; \
    python3 -m pip --version
# The interpreter's own bin second: where pip installs scripts (pytest, uv),
# which the official images put in /usr/local/bin.
ENV PATH=/usr/local/bin:${PREFIX:-/usr/local}/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHON_VERSION=${VERSION}
LABEL org.tagmatrix.lab="stand-in" \
      org.opencontainers.image.title="python (tagmatrix lab stand-in)" \
      org.opencontainers.image.description="Lab stand-in for python:${VERSION}-slim, made by tagmatrix lab/up; not an official image" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="PSF-2.0" \
      org.opencontainers.image.source="https://github.com/docker-library/python"
CMD ["python3"]
