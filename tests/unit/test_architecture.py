"""The layout promises of DESIGN.md, checked on the source: services never import
each other, and only the gateway signs (the simulator may only verify)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
SIGNING_NAMES = {
    "HmacSigner",
    "Ed25519Signer",
    "signed_query",
    "signer_from_config",
    "hmac_sha256_signature",
    "ed25519_signature",
    "load_ed25519_private_key",
}


def _imports(path: Path) -> list[tuple[str, set[str]]]:
    found: list[tuple[str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, {a.name for a in node.names}))
        elif isinstance(node, ast.Import):
            found.extend((a.name, set()) for a in node.names)
    return found


def test_services_never_import_each_other() -> None:
    offenders = []
    for service in SERVICES:
        for path in (ROOT / "services" / service).rglob("*.py"):
            for module, _names in _imports(path):
                parts = module.split(".")
                # The launcher (services.cli) knows every service; a service may name it
                # (the dev supervisor checks commands against it) but no other service.
                if parts[0] == "services" and len(parts) > 1 and parts[1] not in (service, "cli"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_only_the_gateway_signs_requests() -> None:
    offenders = []
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        rel = path.relative_to(ROOT)
        if rel.parts[:2] in (("services", "gateway"), ("shared", "binance")):
            continue
        for module, names in _imports(path):
            if module.startswith("shared.binance") and names & SIGNING_NAMES:
                offenders.append(f"{rel} imports {sorted(names & SIGNING_NAMES)}")
    assert offenders == []
