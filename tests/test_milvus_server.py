"""The store's contract (``tests/test_store.py``) on a real Milvus 2.3.5 standalone server.

``bash scripts/test_server.sh`` installs the server in ``.venv-milvus-server``, starts it inside a
network namespace that holds only loopback, sets ``LC_MILVUS_SERVER_URI`` and runs this file.
Without that variable every test here skips, saying how to run them.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest

from lc_utils import store
from tests.test_store import Backend, StoreContract, free_port, make_chunks

SERVER_URI = os.environ.get("LC_MILVUS_SERVER_URI", "")
# scripts/test_server.sh sets this when it cannot isolate a server, to say why here too.
UNAVAILABLE = os.environ.get("LC_MILVUS_SERVER_UNAVAILABLE", "")

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not SERVER_URI,
        reason=f"no real Milvus server: {UNAVAILABLE}"
        if UNAVAILABLE
        else "needs a real Milvus server: run `bash scripts/test_server.sh` (it starts Milvus "
        "2.3.5 on loopback in a network namespace), or set LC_MILVUS_SERVER_URI to a server",
    ),
]


@pytest.fixture(scope="module")
def server_client():
    client = store.connect(SERVER_URI)
    yield client
    store.close(client)


class TestServerStore(StoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls):
        backend = Backend("server", SERVER_URI, store.connect(SERVER_URI))
        yield backend
        store.close(backend.client)


def test_it_is_a_real_server_not_lite(server_client):
    version = server_client.get_server_version()
    assert version.startswith("v2.") and "milvus_lite" not in version, version


def test_a_wrong_port_on_the_server_host_fails_fast():
    host = re.match(r"\w+://([^:/]+)", SERVER_URI).group(1)
    uri = f"http://{host}:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=re.escape(uri)):
        store.connect(uri, timeout=3)
    assert time.monotonic() - started < 15


def test_a_second_client_sees_the_first_ones_writes(server_client):
    name = "t_two_clients"
    records, vectors = make_chunks(3, 4, 8)
    store.create_collection(server_client, name, 8, overwrite=True)
    try:
        store.ingest(
            server_client,
            name,
            records,
            vectors,
            method="late",
            model="m",
            chunking="c",
            progress=False,
        )
        other = store.connect(SERVER_URI)
        try:
            assert store.count_chunks(other, name) == 12
            hits = store.search(other, name, vectors[:1], k=1, consistency_level="Strong")
            assert hits.loc[0, "id"] == store.chunk_id("doc0", 0, "late", "m", "c")
            assert np.isclose(hits.loc[0, "score"], 1.0, atol=1e-5)
        finally:
            store.close(other)
    finally:
        server_client.drop_collection(name)
