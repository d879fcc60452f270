"""The test session's own user directories (tests/conftest.py): a daemon started without
--socket or --spool-dir in one session (one xdist worker) never meets another's, nor the
user's own."""

from __future__ import annotations

from swictation.adapters.control_socket import default_socket_path
from swictation.adapters.spool import default_spool_dir
from swictation.adapters.text_output import default_undelivered_path


def test_the_defaults_live_in_this_sessions_directories(tmp_path_factory):
    session = tmp_path_factory.getbasetemp()
    for path in (default_socket_path(), default_spool_dir(), default_undelivered_path()):
        assert session in path.parents, path
