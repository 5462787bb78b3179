"""`revo integrations add|list|remove` and `revo ci-policy show|set`, as an operator runs
them (a subprocess, the operator's credentials): secrets from the environment or a prompt,
listed masked, usage errors said before anything is sent."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from revo_contracts.integrations import GithubIntegration
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY, nats_server_of
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

REVO = [sys.executable, "-m", "revo_cli.main"]
TOKEN = "ghp_clitokenthatstaysoutofhistory"
HOOK_SECRET = "hook-secret-typed-at-a-prompt"


async def revo(*args: str, stdin: str = "", env: dict | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *REVO,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return process.returncode or 0, out.decode(), err.decode()


def new_tenant() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def test_add_list_and_remove_keep_secrets_out_of_argv_and_output(
    integrations, integrations_nats, pg
):
    nats = ("--nats-url", integrations_nats.url)
    tenant = new_tenant()
    code, out, err = await revo(
        *nats, "integrations", "add", "github", "--tenant", tenant,
        "--token-env", "CI_GITHUB_TOKEN", "--webhook-secret", "-",
        "--api-url", "http://127.0.0.1:9/api", "--no-comments",
        stdin=HOOK_SECRET + "\n", env={"CI_GITHUB_TOKEN": TOKEN},
    )  # fmt: skip
    assert code == 0, err
    assert f"github integration of tenant {tenant} stored" in err and out == ""
    stored = await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).get(tenant, "github")
    assert stored == GithubIntegration(
        webhook_secret=HOOK_SECRET, token=TOKEN, api_url="http://127.0.0.1:9/api", comments=False
    )

    code, out, err = await revo(*nats, "integrations", "list", "--tenant", tenant)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["TENANT", "KIND", "SETTINGS", "UPDATED"]
    assert row.split()[:2] == [tenant, "github"]
    assert "token=********" in row and "webhook_secret=********" in row
    assert "comments=False" in row and "api_url=http://127.0.0.1:9/api" in row
    assert TOKEN not in out + err and HOOK_SECRET not in out + err

    code, out, err = await revo(*nats, "integrations", "remove", "github", "--tenant", tenant)
    assert (code, out.strip()) == (0, f"github integration of tenant {tenant} removed"), err
    code, out, err = await revo(*nats, "integrations", "list", "--tenant", tenant)
    assert (code, out, err.strip()) == (0, "", "no integrations")
    code, _, err = await revo(*nats, "integrations", "remove", "github", "--tenant", tenant)
    assert code == 1 and f"tenant '{tenant}' has no github integration" in err


async def test_a_webhook_added_without_a_secret_prints_the_made_one_once(
    integrations, integrations_nats
):
    nats = ("--nats-url", integrations_nats.url)
    tenant = new_tenant()
    code, out, err = await revo(
        *nats, "integrations", "add", "webhook", "--tenant", tenant, "--url", "https://r.example"
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("whsec_") and "shown this once" in err
    code, out, _ = await revo(*nats, "integrations", "list", "--tenant", tenant)
    assert secret not in out and "secret=********" in out and "url=https://r.example" in out


async def test_bad_usage_is_refused_with_its_reason(integrations, integrations_nats):
    nats = ("--nats-url", integrations_nats.url)
    tenant = new_tenant()
    add = (*nats, "integrations", "add")
    code, _, err = await revo(*add, "github", "--tenant", tenant, "--url", "https://x")
    assert code == 2 and "a github integration has no --url" in err
    code, _, err = await revo(*add, "github", "--tenant", tenant, "--token-env", "NOT_SET_X")
    assert code == 2 and "the environment has no variable NOT_SET_X" in err
    code, _, err = await revo(
        *add, "github", "--tenant", tenant, "--token", "a", "--token-env", "B"
    )
    assert code == 2 and "not both" in err
    code, _, err = await revo(*add, "slack", "--tenant", tenant, "--channel", "#ci")
    assert code == 2 and "slack needs a webhook_url, or a token and a channel" in err
    code, _, err = await revo(*add, "jira", "--tenant", tenant, "--site", "https://j.example")
    assert code == 2 and "project" in err
    code, _, err = await revo(*add, "slack", "--tenant", "no spaces", "--webhook-url", "https://h")
    assert code == 2 and "tenant" in err
    code, out, _ = await revo(*nats, "integrations", "list", "--tenant", tenant)
    assert out == ""


async def test_ci_policy_show_and_set_change_only_what_is_given(integrations, integrations_nats):
    nats = ("--nats-url", integrations_nats.url)
    tenant = new_tenant()
    code, out, err = await revo(*nats, "ci-policy", "show", "--tenant", tenant)
    assert code == 0, err
    assert out.split("\n")[:2] == ["enabled       yes", "agent         ci-debugger"]
    assert "window        1h" in out and "repositories  (any)" in out

    code, out, err = await revo(
        *nats, "ci-policy", "set", "--tenant", tenant, "--agent", "triage", "--repo", "acme/*",
        "--branch", "main", "--branch", "release/*", "--window", "30m", "--notify", "slack",
    )  # fmt: skip
    assert code == 0, err
    assert f"CI policy of tenant {tenant} set" in err
    assert "agent         triage" in out and "repositories  acme/*" in out
    assert "branches      main release/*" in out and "window        30m" in out
    assert "notify        slack" in out

    code, out, err = await revo(
        *nats, "ci-policy", "set", "--tenant", tenant, "--disable", "--any-repo"
    )
    assert code == 0, err
    code, out, err = await revo(*nats, "ci-policy", "show", "--tenant", tenant)
    assert "enabled       no" in out and "agent         triage" in out
    assert "repositories  (any)" in out and "branches      main release/*" in out

    code, _, err = await revo(*nats, "ci-policy", "set", "--tenant", tenant, "--window", "soon")
    assert code == 2 and "cannot read 'soon' as a window" in err
    code, _, err = await revo(*nats, "ci-policy", "set", "--tenant", tenant, "--window", "90d")
    assert code == 2 and "window_s" in err
    code, _, err = await revo(*nats, "ci-policy", "set", "--tenant", tenant, "--agent", "No!")
    assert code == 2 and "agent" in err
    code, _, err = await revo(*nats, "ci-policy", "set", "--tenant", tenant)
    assert code == 2 and "nothing to set" in err
    code, out, _ = await revo(*nats, "ci-policy", "show", "--tenant", tenant)
    assert "enabled       no" in out and "window        30m" in out


async def test_without_an_integrations_service_the_cli_says_so(revo_tmp, bus_authority):
    server = nats_server_of(revo_tmp / "nats-no-integrations", bus_authority)
    try:
        code, _, err = await revo("--nats-url", server.url, "integrations", "list")
        assert code == 2 and "no integrations answers" in err
    finally:
        server.stop()
