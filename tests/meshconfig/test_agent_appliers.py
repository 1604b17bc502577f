"""The agent's own pieces without a server: local bundle checks, the atomic directory writer
and the kubectl applier.

The kubectl applier runs against a fake ``kubectl`` script put first on PATH that records its
arguments and fails on request: a test double for a binary this machine cannot install (there
is no Kubernetes API server here). It checks the commands the agent issues, not Kubernetes.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from agent.appliers import DirectoryApplier, KubectlApplier, read_revision
from agent.bundle import BundleError, bundle_from_json


def vs(name, namespace="shop", host="reviews"):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]},
    }


def dr(name, namespace="shop"):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"host": name, "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }


def doc(revision, resources, digest=None):
    return {"revision": revision, "digest": digest or f"{revision:064x}", "resources": resources}


def test_bundle_checks_name_the_failing_resource():
    bundle = bundle_from_json(doc(1, [vs("a"), dr("b")]))
    assert [r.key for r in bundle.resources] == ["VirtualService/shop/a", "DestinationRule/shop/b"]

    unknown = {**vs("a"), "kind": "Deployment"}
    with pytest.raises(BundleError) as caught:
        bundle_from_json(doc(1, [unknown]))
    assert caught.value.path == "kind" and "Deployment" in caught.value.message

    old_api = {**vs("a"), "apiVersion": "networking.istio.io/v2"}
    with pytest.raises(BundleError) as caught:
        bundle_from_json(doc(1, [old_api]))
    assert caught.value.resource == "VirtualService/shop/a"
    assert caught.value.path == "apiVersion"

    # A name that would climb out of the agent's directory is refused before any write.
    with pytest.raises(BundleError) as caught:
        bundle_from_json(doc(1, [vs("../../etc/passwd")]))
    assert caught.value.path == "metadata.name"

    with pytest.raises(BundleError, match="twice"):
        bundle_from_json(doc(1, [vs("a"), vs("a")]))
    with pytest.raises(BundleError, match="ETag"):
        bundle_from_json(doc(1, [vs("a")]), etag_digest="other")


def test_directory_swaps_revisions_atomically_and_prunes(tmp_path):
    target = tmp_path / "mesh"
    applier = DirectoryApplier(target)
    applier.apply(bundle_from_json(doc(1, [vs("a"), dr("b")])))
    assert read_revision(target) == (1, f"{1:064x}")
    assert yaml.safe_load((target / "VirtualService/shop/a.yaml").read_text()) == vs("a")
    assert (target / "DestinationRule/shop/b.yaml").exists()

    applier.apply(bundle_from_json(doc(2, [vs("a", host="ratings")])))
    assert applier.applied() == (2, f"{2:064x}")
    assert yaml.safe_load((target / "VirtualService/shop/a.yaml").read_text()) == vs(
        "a", host="ratings"
    )
    # The DestinationRule is gone with its kind folder; one revision folder is kept.
    assert not (target / "DestinationRule").exists()
    kept = sorted(p.name for p in target.iterdir() if p.name.startswith("..r"))
    assert kept == ["..r2-" + f"{2:064x}"[:12]]


def test_directory_refuses_to_replace_files_it_did_not_write(tmp_path):
    target = tmp_path / "mesh"
    (target / "VirtualService").mkdir(parents=True)
    (target / "VirtualService" / "mine.yaml").write_text("kept: true\n")
    with pytest.raises(BundleError, match="not written by the agent"):
        DirectoryApplier(target).apply(bundle_from_json(doc(1, [vs("a")])))
    assert (target / "VirtualService" / "mine.yaml").read_text() == "kept: true\n"
    assert [p.name for p in target.iterdir()] == ["VirtualService"]


FAKE_KUBECTL = """#!/bin/sh
# Records each call's arguments, one JSON array per line; fails when asked to.
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$KUBECTL_LOG"
for a in "$@"; do
  if [ "$a" = "--dry-run=server" ] && [ -n "$KUBECTL_FAIL_DRY_RUN" ]; then
    echo "Error from server (BadRequest): error when creating \\"$KUBECTL_FAIL_DRY_RUN\\":" \\
      "spec.http[0]: invalid" >&2
    exit 1
  fi
done
exit 0
"""


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(FAKE_KUBECTL)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBECTL_LOG", str(log))

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return calls


def test_kubectl_dry_run_then_apply_then_prune(tmp_path, fake_kubectl):
    applier = KubectlApplier(state_dir=tmp_path / "state", context="prod")
    applier.apply(bundle_from_json(doc(1, [vs("a"), dr("b")])))
    first = fake_kubectl()
    assert [c[:4] for c in first] == [
        ["--context", "prod", "apply", "--server-side"],
        ["--context", "prod", "apply", "--server-side"],
    ]
    assert "--dry-run=server" in first[0] and "--dry-run=server" not in first[1]
    assert "--field-manager=canopy-agent" in first[1] and "-R" in first[1]

    applier.apply(bundle_from_json(doc(2, [vs("a")])))
    second = fake_kubectl()[len(first) :]
    assert len(second) == 3
    deleted = second[2]
    assert deleted[:4] == ["--context", "prod", "delete", "--ignore-not-found"]
    assert Path(deleted[-1]).name == "b.yaml" and "DestinationRule" in deleted[-1]
    assert applier.applied() == (2, f"{2:064x}")

    # A failing dry run applies nothing, names the resource, and keeps the last good record.
    # (The failing file's path is only known once the agent wrote its temporary tree.)
    before = len(fake_kubectl())
    with pytest.MonkeyPatch.context() as m:
        import agent.appliers as appliers

        real_write_tree = appliers.write_tree

        def write_and_point(root, bundle):
            real_write_tree(root, bundle)
            m.setenv("KUBECTL_FAIL_DRY_RUN", str(root / "VirtualService/shop/c.yaml"))

        m.setattr(appliers, "write_tree", write_and_point)
        with pytest.raises(BundleError) as caught:
            applier.apply(bundle_from_json(doc(3, [vs("a"), vs("c")])))
    assert caught.value.resource == "VirtualService/shop/c"
    assert "spec.http[0]" in caught.value.message
    after = fake_kubectl()[before:]
    assert len(after) == 1 and "--dry-run=server" in after[0]
    assert applier.applied() == (2, f"{2:064x}")
