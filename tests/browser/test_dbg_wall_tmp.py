from tests.browser.test_wall import *  # noqa
def test_dbg(stack, page_for):
    page = page_for("commander", viewport=FULL_HD, path="/wall", wait=False)
    errs = []
    page.on("pageerror", lambda e: errs.append(e.stack))
    page.reload()
    page.wait_for_timeout(4000)
    print("ERRS", errs)
    page_for.allow_errors(page, ".")
