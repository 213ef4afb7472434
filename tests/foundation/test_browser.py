import pytest


@pytest.mark.browser
def test_login_page_loads_without_console_errors_or_csp_violations(server, page):
    page.page.goto(server.url + "/")
    assert page.page.title().startswith("Sign in")
    assert page.page.evaluate("typeof htmx") == "object"
    assert page.console_errors == []


@pytest.mark.browser
def test_signed_in_home_has_navigation_and_no_errors(server, page):
    page.sign_in(server)
    nav = page.page.locator("nav.mainnav")
    assert nav.get_by_role("link", name="Services").is_visible()
    assert page.console_errors == []
