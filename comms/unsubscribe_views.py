"""``/u/<token>``: the link of ``List-Unsubscribe`` and of ``{{unsubscribe_url}}`` /
``{{preferences_url}}`` (``comms.unsubscribe``).

POST is RFC 8058's one-click: a mail client posts ``List-Unsubscribe=One-Click`` without
cookies, so the view is CSRF-exempt and unsubscribes at once (200, no confirmation page; a
replay changes nothing). GET never changes anything (link scanners fetch links): it shows the
preferences page in the sender's name. Its form posts back to the same link with Django's
CSRF token, checked here: the signed token is the only key, the CSRF token keeps another
site from submitting choices through a recipient's browser."""

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import Account
from comms import unsubscribe
from comms.unsubscribe import LinkRefused, Recipient
from domains.models import Brand

PREFERENCES_FORM = "preferences"  # the page form's marker; any other POST is one-click


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        recipient = unsubscribe.token_read(token)
        sender = _sender(recipient)
    except LinkRefused as refused:
        return _page(request, "comms/unsubscribe_refused.html", {"message": refused.message},
                     status=refused.status)
    if request.method == "GET":
        return _preferences(request, recipient, sender)
    if request.POST.get("form") != PREFERENCES_FORM:
        unsubscribe.one_click(recipient)
        return _page(request, "comms/unsubscribe_done.html",
                     {"sender": sender, "recipient": recipient, "link": request.path})
    refused = CsrfViewMiddleware(_no_view).process_view(request, None, (), {})
    if refused is not None:
        return refused
    unsubscribe.preferences_save(recipient=recipient, wanted=request.POST.getlist("topic"),
                                 all_topics=bool(request.POST.get("all")))
    return redirect(f"{request.path}?saved=1#preferences")


def _preferences(request: HttpRequest, recipient: Recipient, sender: str) -> HttpResponse:
    preferences = unsubscribe.preferences_of(recipient)
    stopped = dict(preferences.topics).get(recipient.topic) is False or preferences.all_topics
    return _page(request, "comms/unsubscribe_preferences.html", {
        "sender": sender, "recipient": recipient, "preferences": preferences,
        "topic_stopped": stopped, "saved": request.GET.get("saved") == "1",
        "form_name": PREFERENCES_FORM, "one_click": unsubscribe.ONE_CLICK})


def _sender(recipient: Recipient) -> str:
    """Whose mail it is, as its recipients know it: the account's default brand's From name
    (or name), else the account's name. An account gone: the link is refused."""
    account = Account.objects.filter(id=recipient.account_id).only("name").first()
    if account is None:
        raise LinkRefused
    brand = Brand.objects.filter(account_id=account.id, is_default=True).first()
    return (brand.from_name or brand.name) if brand else account.name


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    # The token is in the URL: never cached, indexed or sent on as a referrer.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def _no_view(request: HttpRequest) -> None:
    return None
