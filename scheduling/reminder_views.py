"""Reminder doors: a participant's reminder settings (consent per channel, pause) posted from
the participant page, and the SMS provider's inbound webhook (STOP / START)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from scheduling import access, outbox, selectors

#: what a participant texts to stop or restart text messages (the carriers' standard words)
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@login_required
@require_POST
def participant_reminder_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Consent per channel and the pause, from the participant page's Reminders form. Only
    those who may change the participant's contact details (coordinators and administrators
    of the site) may; another site's participant is a 404."""
    found = get_object_or_404(selectors.visible_participants(request.user), pk=pk)
    if not access.can(request.user, access.Action.CHANGE, found):
        raise PermissionDenied("Only coordinators and administrators change reminder settings.")
    action = request.POST.get("action", "")
    by = request.user if request.user.is_authenticated else None
    if action in ("email-consent", "sms-consent", "email-withdraw", "sms-withdraw"):
        channel, what = action.split("-")
        outbox.participant_consent_set(
            participant=found, channel=channel, given=what == "consent", by=by, source="staff page"
        )
    elif action == "pause":
        reason = request.POST.get("reason", "")[:200]
        if not reason.strip():
            messages.error(request, "Give a reason for pausing the reminders: it is recorded.")
        else:
            outbox.participant_reminders_pause(participant=found, by=by, reason=reason)
    elif action == "resume":
        outbox.participant_reminders_resume(participant=found, by=by)
    else:
        messages.error(request, "Choose what to change: consent, pause or resume.")
    return redirect(reverse("participant", kwargs={"pk": found.pk}) + "#reminder-settings")


@csrf_exempt  # the provider cannot send a CSRF token: the signature stands in for it
@require_POST
def sms_inbound(request: HttpRequest) -> HttpResponse:
    """The SMS provider's inbound message (Twilio's form: From, Body, ...). A valid
    X-Twilio-Signature is required (403 otherwise, nothing changes). STOP and its synonyms
    withdraw text-message consent of every participant with that number, START gives it
    again; any other text is ignored. Neither the number nor the text is logged."""
    token = getattr(settings, "TWILIO_AUTH_TOKEN", "") or ""
    signature = request.headers.get("X-Twilio-Signature", "")
    params = request.POST.dict()
    url = request.build_absolute_uri()
    if not token or not signature or not RequestValidator(token).validate(url, params, signature):
        return HttpResponse("Forbidden: the signature does not match.", status=403)
    word = params.get("Body", "").strip().strip(".!").upper()
    sender = params.get("From", "")
    if word in STOP_WORDS:
        outbox.participants_sms_consent_from_reply(phone=sender, given=False)
    elif word in START_WORDS:
        outbox.participants_sms_consent_from_reply(phone=sender, given=True)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
