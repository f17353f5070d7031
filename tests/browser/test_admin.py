"""/admin in a real browser: an admin adds an officer, who must change the temporary
password; the admin sees and ends the officer's session, disables the account, and finds
who opened a call in the audit trail, with a formula-safe CSV export. Each step is in the
trail; no caller data is shown. (Who else may open /admin: tests/browser/test_access.py.)"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from dashboard.audit import AuditLog
from streams.core.audit import Actor, AuditQuery
from tests.browser.conftest import Stack, wait_for_page, wait_until
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

DAY = 86400.0
NEW_PASSWORD = "field-officer-pw-1"


def trail(stack: Stack, user: str) -> list[dict[str, Any]]:
    return AuditLog(stack.redis, stack.keys, DAY).search(
        AuditQuery(user=user), Actor("test", "admin", None, "test")).entries


def sign_in_form(page: Any, stack: Stack, name: str, password: str) -> None:
    page.goto(f"{stack.base_url}/login?next=/")
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_load_state("domcontentloaded")


def test_admin_manages_an_officer_and_answers_who_opened_a_call(
        page_for: Any, stack: Stack, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    name, call_id = f"field-{tag}", f"C-ADM-{tag}"
    # What the tablet records when an officer opens a call's detail (contract 6); the
    # caller's name passed along must never reach the trail or this page.
    AuditLog(stack.redis, stack.keys, DAY).append(
        "call_detail", Actor("=cmd|' /C calc'!A0", "cso", "North", "10.0.0.7"), call_id,
        {"page": "/queues", "caller_name": "Ann Caller"})
    admin = page_for("admin", viewport=(1366, 1000), path="/admin")
    expect(admin.locator("#admin-users-table")).to_contain_text("cso-north")

    admin.fill("#admin-new-name", name)
    admin.select_option("#admin-new-role", "cso")
    admin.select_option("#admin-new-district", "North")
    admin.click("#admin-add")
    temporary = admin.locator("#admin-temporary-password").inner_text().strip()
    assert len(temporary) >= 12
    row = admin.locator(f"#admin-user-{name}")
    expect(row).to_contain_text("must change password")

    officer = page_for(None, viewport=(800, 1280), path="/login")
    sign_in_form(officer, stack, name, temporary)
    assert urlsplit(officer.url).path == "/password"
    officer.fill("#password-current", temporary)
    officer.fill("#password-new", NEW_PASSWORD)
    officer.fill("#password-again", NEW_PASSWORD)
    officer.click("#password-submit")
    wait_for_page(officer)
    assert urlsplit(officer.url).path == "/"

    # Once its session is ended, the officer's open page has its callbacks refused (403)
    # until it leaves for the sign-in form: that is the point.
    page_for.allow_errors(officer, r"status of 403|sign in first")
    admin.click("#admin-refresh")
    session_row = admin.locator(".admin-session-row", has_text=name)
    expect(session_row).to_have_count(1)
    session_row.get_by_role("button", name="End").click()
    expect(admin.locator("#admin-alert")).to_contain_text("Session ended")
    expect(admin.locator(".admin-session-row", has_text=name)).to_have_count(0)
    ended = [{k.decode(): v.decode() for k, v in fields.items()}
             for _, fields in stack.redis.xrange(stack.keys.session_revocations)]
    assert any(e["user"] == name and e["reason"] == "ended_by_admin" for e in ended)
    officer.goto(f"{stack.base_url}/queues")
    assert urlsplit(officer.url).path == "/login"

    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    sign_in_form(officer, stack, name, NEW_PASSWORD)
    expect(officer.locator("#login-error")).to_contain_text("disabled")

    admin.fill("#admin-audit-call", call_id)
    admin.click("#admin-search")
    found = admin.locator(".admin-audit-row")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("opened a call's detail")
    expect(found).to_contain_text("10.0.0.7")
    assert "Ann Caller" not in admin.content()

    admin.fill("#admin-audit-call", "")
    admin.fill("#admin-audit-user", name)
    admin.click("#admin-search")
    wait_until(lambda: admin.locator(".admin-audit-row").count() >= 4, "the officer's trail")
    shown = admin.locator("#admin-audit-table").inner_text()
    for words in ("signed in", "changed their own password", "sign-in failed", "opened a page"):
        assert words in shown, words

    admin.fill("#admin-audit-user", "")
    admin.fill("#admin-audit-call", call_id)
    with admin.expect_download() as download:
        admin.click("#admin-export")
    saved = tmp_path / "audit.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [(r["user"], r["call_id"], r["action"]) for r in rows] == [
        ("'=cmd|' /C calc'!A0", call_id, "call_detail")]
    assert "Ann Caller" not in saved.read_text()

    admin.screenshot(path=str(ARTIFACTS / "admin-page-full.png"), full_page=True)
    mine = {e["action"]: e for e in trail(stack, "admin")}
    for action in ("admin_user_add", "admin_session_end", "admin_user_disable",
                   "audit_search", "audit_export", "page_view"):
        assert action in mine, action
    assert mine["admin_user_add"]["detail"]["target"] == name
    officer_trail = {e["action"] for e in trail(stack, name)}
    assert {"sign_in", "password_changed", "page_view", "sign_in_failed"} <= officer_trail
