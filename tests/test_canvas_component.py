"""FlowCanvas's Python side, without a browser: what it keeps and what it says when unbuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.components import canvas, styles


def test_a_missing_bundle_is_reported_with_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(canvas, "BUNDLE_DIR", tmp_path / "canvas_bundle")
    monkeypatch.setattr(canvas, "_registered", False)
    with pytest.raises(FileNotFoundError, match="make canvas"):
        canvas.bundle_registered()


def test_a_missing_stylesheet_is_reported_with_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(styles, "STYLESHEET", tmp_path / "canvas_bundle" / "tailwind.css")
    with pytest.raises(FileNotFoundError, match="make canvas"):
        styles.link_prebuilt_tailwind()


def test_the_built_bundle_ships_its_third_party_licences() -> None:
    bundle = Path(canvas.__file__).parent / "canvas_bundle"
    licences = (bundle / "THIRD_PARTY_LICENSES.txt").read_text()
    # tailwindcss: its preflight and utilities are in the studio's tailwind.css
    for package in ("@vue-flow/core", "@dagrejs/dagre", "d3-zoom", "tailwindcss"):
        assert package in licences
    # NiceGUI's Vue is shared, not bundled: the bundle imports it
    assert 'from"vue"' in (bundle / "index.js").read_text().replace(" ", "")
