"""Each co-tenant client against a local server implementing that program's documented
endpoints: the exact requests made, and the state they change."""

from __future__ import annotations

import time

import pytest

from swictation.adapters.tenants import (
    A1111Tenant,
    ComfyUiTenant,
    LlamaCppTenant,
    LmStudioTenant,
    OllamaTenant,
    TextGenTenant,
    VllmTenant,
    http_tenant,
)
from swictation.ports.tenants import TENANT_KINDS, Tenant
from tests.tenant_servers import (
    FakeA1111,
    FakeComfyUi,
    FakeLlamaCpp,
    FakeLmStudio,
    FakeOllama,
    FakeTextGen,
    FakeVllm,
    closed_port,
    garbling_port,
    serving,
    silent_port,
)


def test_ollama_lists_then_unloads_each_model_with_keep_alive_zero():
    program = FakeOllama({"llama3.2:latest": 6144.0, "nomic-embed-text": 512.0})
    with serving(program) as url:
        tenant = OllamaTenant(url)
        before = tenant.state()
        assert before.reachable and before.busy is None
        assert {m.name: m.size_mib for m in before.models} == {
            "llama3.2:latest": 6144.0,
            "nomic-embed-text": 512.0,
        }
        assert before.held_mib == 6656.0

        result = tenant.release()
        after = tenant.state()

    assert result.done, result.error
    assert set(result.released) == {"llama3.2:latest", "nomic-embed-text"}
    assert result.reported_mib == 6656.0
    assert program.calls() == [
        ("GET", "/api/ps", None),
        ("GET", "/api/ps", None),
        ("POST", "/api/generate", {"model": "llama3.2:latest", "keep_alive": 0}),
        ("POST", "/api/generate", {"model": "nomic-embed-text", "keep_alive": 0}),
        ("GET", "/api/ps", None),
    ]
    assert after.models == ()  # /api/ps no longer lists them
    assert [c.describe() for c in result.calls][1] == (
        'POST /api/generate {"model":"llama3.2:latest","keep_alive":0} -> 200'
    )


def test_ollama_unloads_only_the_configured_models_and_reloads_them():
    program = FakeOllama({"llama3.2:latest": 6144.0, "nomic-embed-text": 512.0})
    with serving(program) as url:
        tenant = OllamaTenant(url, models=["llama3.2:latest"])
        result = tenant.release()
        assert program.loaded == {"nomic-embed-text"}
        reloaded = tenant.reload()
        assert program.loaded == {"llama3.2:latest", "nomic-embed-text"}
    assert result.released == ("llama3.2:latest",) and result.reported_mib == 6144.0
    assert reloaded.done and reloaded.released == ("llama3.2:latest",)
    assert program.calls()[-1] == ("POST", "/api/generate", {"model": "llama3.2:latest"})


def test_comfyui_free_sets_the_flags_and_the_worker_frees_after_its_job():
    program = FakeComfyUi(running=1)
    with serving(program) as url:
        tenant = ComfyUiTenant(url)
        busy = tenant.state()
        result = tenant.release()
        assert program.models_loaded  # only a flag so far: the job is still running
        program.finish_job()
        idle = tenant.state()
        reloaded = tenant.reload()
    assert busy.busy is True and idle.busy is False
    assert result.done and not program.models_loaded
    assert program.calls() == [
        ("GET", "/queue", None),
        ("POST", "/free", {"unload_models": True, "free_memory": True}),
        ("GET", "/queue", None),
    ]
    assert reloaded.done and reloaded.released == ()  # it loads again with its next job


def test_llamacpp_router_unloads_loaded_models_and_reports_sleeping():
    program = FakeLlamaCpp({"qwen3-8b": True, "gemma-3-4b": False, "phi-4": True})
    with serving(program) as url:
        tenant = LlamaCppTenant(url)
        state = tenant.state()
        result = tenant.release()
        program.sleeping = True
        asleep = tenant.state()
        tenant.reload()
    assert [m.name for m in state.models] == ["qwen3-8b", "phi-4"]
    assert state.sleeping is False and asleep.sleeping is True
    assert asleep.models == ()
    assert result.released == ("qwen3-8b", "phi-4")
    posts = [c for c in program.calls() if c[0] == "POST"]
    assert posts == [
        ("POST", "/models/unload", {"model": "qwen3-8b"}),
        ("POST", "/models/unload", {"model": "phi-4"}),
        ("POST", "/models/load", {"model": "qwen3-8b"}),
        ("POST", "/models/load", {"model": "phi-4"}),
    ]
    assert program.status == {"qwen3-8b": "loaded", "gemma-3-4b": "unloaded", "phi-4": "loaded"}


def test_vllm_sleeps_at_level_one_and_wakes_up():
    program = FakeVllm()
    with serving(program) as url:
        tenant = VllmTenant(url)
        assert tenant.state().sleeping is False
        result = tenant.release()
        assert tenant.state().sleeping is True and program.level == 1
        again = tenant.release()  # already asleep: nothing more to ask
        woken = tenant.reload()
        assert tenant.state().sleeping is False
    assert result.done and result.released == ("sleep level 1",)
    assert again.done and again.released == ()
    assert woken.released == ("sleep level 1",)
    posts = [c for c in program.calls() if c[0] == "POST"]
    assert posts == [("POST", "/sleep?level=1", None), ("POST", "/wake_up", None)]


def test_lmstudio_unloads_every_loaded_instance_by_its_id():
    program = FakeLmStudio({"openai/gpt-oss-20b": (12288.0, 2), "qwen/qwen3-4b": (2048.0, 0)})
    with serving(program) as url:
        tenant = LmStudioTenant(url)
        state = tenant.state()
        result = tenant.release()
        assert tenant.state().models == ()
        tenant.reload()
    assert [m.name for m in state.models] == ["openai/gpt-oss-20b", "openai/gpt-oss-20b:2"]
    assert state.held_mib == 2 * 12288.0
    assert result.reported_mib == 2 * 12288.0
    posts = [c for c in program.calls() if c[0] == "POST"]
    assert posts[:2] == [
        ("POST", "/api/v1/models/unload", {"instance_id": "openai/gpt-oss-20b"}),
        ("POST", "/api/v1/models/unload", {"instance_id": "openai/gpt-oss-20b:2"}),
    ]
    assert posts[2] == ("POST", "/api/v1/models/load", {"model": "openai/gpt-oss-20b"})


def test_a1111_reports_busy_and_unloads_then_reloads_its_checkpoint():
    program = FakeA1111(job_count=2)
    with serving(program) as url:
        tenant = A1111Tenant(url)
        assert tenant.state().busy is True
        program.job_count = 0
        assert tenant.state().busy is False
        tenant.release()
        assert not program.checkpoint_loaded
        tenant.reload()
        assert program.checkpoint_loaded
    posts = [c for c in program.calls() if c[0] == "POST"]
    assert posts == [
        ("POST", "/sdapi/v1/unload-checkpoint", None),
        ("POST", "/sdapi/v1/reload-checkpoint", None),
    ]


def test_textgen_unloads_its_model_and_loads_it_back_by_name():
    program = FakeTextGen("Qwen3-8B-Q4_K_M.gguf")
    with serving(program) as url:
        tenant = TextGenTenant(url)
        assert [m.name for m in tenant.state().models] == ["Qwen3-8B-Q4_K_M.gguf"]
        result = tenant.release()
        assert tenant.state().models == () and program.model is None
        nothing = tenant.release()
        tenant.reload()
    assert result.released == ("Qwen3-8B-Q4_K_M.gguf",)
    assert nothing.done and nothing.released == ()
    # The second release let go of nothing; the reload brings back what the first did.
    assert program.model == "Qwen3-8B-Q4_K_M.gguf"
    posts = [c for c in program.calls() if c[0] == "POST"]
    assert posts == [
        ("POST", "/v1/internal/model/unload", None),
        ("POST", "/v1/internal/model/load", {"model_name": "Qwen3-8B-Q4_K_M.gguf"}),
    ]


def test_textgen_leaves_a_model_that_is_not_in_its_list():
    program = FakeTextGen("big-model")
    with serving(program) as url:
        result = TextGenTenant(url, models=["small-model"]).release()
    assert result.done and result.released == () and program.model == "big-model"
    assert all(method == "GET" for method, _p, _b in program.calls())


@pytest.mark.parametrize("kind", TENANT_KINDS)
def test_a_tenant_that_does_not_listen_is_a_value_not_an_exception(kind):
    tenant = http_tenant(kind, closed_port())
    assert isinstance(tenant, Tenant)
    state = tenant.state()
    result = tenant.release()
    assert not state.reachable and state.error
    assert not result.done and result.error
    assert result.calls and result.calls[0].status is None


@pytest.mark.parametrize("kind", TENANT_KINDS)
def test_a_tenant_that_never_answers_is_given_up_after_its_timeout(kind):
    with silent_port() as url:
        tenant = http_tenant(kind, url, timeout_s=0.2)
        began = time.monotonic()
        result = tenant.release()
        spent = time.monotonic() - began
    assert not result.done
    assert "no answer within 0.2s" in result.error
    assert spent < 5  # one timed-out request, not a hang


def test_an_http_error_is_reported_with_its_status():
    program = FakeOllama({"llama3.2:latest": 100.0})
    with serving(program) as url:
        tenant = OllamaTenant(url)
        program.refuse_posts = 500
        result = tenant.release()
    assert not result.done
    assert "HTTP 500" in result.error
    assert result.calls[-1].status == 500


def test_default_urls_are_on_localhost():
    for kind in TENANT_KINDS:
        assert http_tenant(kind).url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("kind", TENANT_KINDS)
@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"mod'],
    ids=["not-http", "cut-short"],
)
def test_something_else_on_the_port_is_a_value_not_an_exception(kind, reply):
    with garbling_port(reply) as url:
        tenant = http_tenant(kind, url)
        state = tenant.state()
        result = tenant.release()
    assert not state.reachable and state.error
    assert not result.done and result.error
