"""The vendored browser assets are the files their manifest names, byte for byte, and every
page loads only assets served from the console itself."""

import hashlib
from pathlib import Path

import fairway_submission.console as console

STATIC = Path(console.__file__).parent / "static"
VENDOR = STATIC / "vendor"


def manifest() -> list[list[str]]:
    lines = (VENDOR / "MANIFEST").read_text().splitlines()
    return [line.split("\t") for line in lines if line and not line.startswith("#")]


def test_each_vendored_file_has_the_hash_its_manifest_names():
    entries = manifest()
    assert entries, "the manifest lists no file"
    for name, package, version, sha256 in entries:
        data = (VENDOR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, f"{name} ({package} {version})"


def test_every_vendored_file_is_in_the_manifest():
    listed = {entry[0] for entry in manifest()}
    assert {p.name for p in VENDOR.iterdir() if p.name != "MANIFEST"} == listed


def test_the_pages_load_nothing_from_elsewhere():
    templates = Path(console.__file__).parent / "templates"
    for page in templates.glob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page.name
