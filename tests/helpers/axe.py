"""Accessibility checks in browser tests: axe-core, served by the app under test, run in the page.

axe comes from the project's pinned npm packages (``/static/vendor/axe.min.js``), so the
check needs no network and passes the page's Content-Security-Policy (``script-src 'self'``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from playwright.sync_api import Page

from bot.web.vendor import vendor_url

WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

_RUN_AXE = """async (tags) => {
  const results = await axe.run(document, {
    runOnly: {type: 'tag', values: tags},
    resultTypes: ['violations'],
  });
  return results.violations;
}"""


def axe_violations(page: Page, *, tags: tuple[str, ...] = WCAG_TAGS) -> list[dict[str, Any]]:
    """Inject the locally served axe-core into ``page`` and return its WCAG A/AA violations.

    Args:
        page: A page already showing the app under test (its origin serves axe).
        tags: axe rule tags to run; WCAG 2.0 and 2.1, levels A and AA, by default.

    Returns:
        axe's violation objects (``id``, ``impact``, ``help``, ``helpUrl``, ``nodes``...).
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=urljoin(page.url, vendor_url("axe.min.js")))
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE, list(tags))
    return violations


def format_violations(violations: list[dict[str, Any]]) -> str:
    """One readable block per violation: rule id, impact, help text and each failing node."""
    lines = []
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation.get('impact') or 'no impact'}): {violation['help']}"
            f" <{violation.get('helpUrl', '')}>"
        )
        for node in violation.get("nodes", []):
            target = " ".join(str(part) for part in node.get("target", []))
            summary_lines = [
                line.strip() for line in node.get("failureSummary", "").splitlines() if line.strip()
            ]
            summary = " ".join([*summary_lines[:1], "; ".join(summary_lines[1:])])
            lines.append(f"    at {target}: {summary}")
            lines.append(f"       {node.get('html', '')[:200]}")
    return "\n".join(lines)


def assert_no_axe_violations(page: Page, *, where: str = "") -> None:
    """Fail with a readable list when axe finds WCAG 2.1 A/AA violations on ``page``.

    Args:
        page: A page showing the app under test.
        where: What is being checked (e.g. "chat page after an answer"), for the message.
    """
    violations = axe_violations(page)
    if violations:
        label = where or page.url
        raise AssertionError(
            f"{len(violations)} accessibility violation(s) on {label}:\n"
            + format_violations(violations)
        )
