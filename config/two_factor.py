"""The second step of signing in (django-otp, TOTP): a code from the user's authenticator app,
or, the first time, setting that app up from a QR code. SignInMiddleware (config/auth.py)
sends every signed-in user who must use a second factor here until they have."""

from __future__ import annotations

import logging

import segno
from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

logger = logging.getLogger(__name__)

WRONG_CODE = (
    "That code was not accepted. Enter the code your authenticator app shows now (it changes "
    "every 30 seconds); after several wrong codes, wait a minute before trying again."
)


class CodeForm(forms.Form):
    code = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="6-digit code",
        error_messages={
            "required": "Enter the 6-digit code from your authenticator app.",
            "invalid": "Enter the 6 digits your authenticator app shows, without spaces.",
        },
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "size": 8}
        ),
    )

    def __init__(self, *args: object, device: TOTPDevice, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.device = device

    def clean_code(self) -> str:
        """The device checks the code and throttles wrong ones (doubling the wait each time)."""
        code: str = self.cleaned_data["code"].strip()
        if not self.device.verify_token(code):
            raise forms.ValidationError(WRONG_CODE)
        return code


def _next(request: HttpRequest) -> str:
    """Where the user was going, if it is on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


def _verified(request: HttpRequest, device: TOTPDevice) -> HttpResponseRedirect:
    otp_login(request, device)
    logger.info("Two-factor sign-in completed for user id %s", device.user_id)
    return redirect(_next(request))


@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    """The code page; without a confirmed device yet, the enrolment page instead."""
    user = _user(request)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        return _enrol(request, user)
    form = CodeForm(request.POST or None, device=device)
    if request.method == "POST":
        if form.is_valid():
            return _verified(request, device)
        logger.warning("Two-factor code refused for user id %s", user.pk)
    return render(request, "registration/two_factor.html", {"form": form, "next": _next(request)})


def _enrol(request: HttpRequest, user: User) -> HttpResponse:
    """Shows the secret (QR code, base32 and otpauth URI) of an unconfirmed device and
    confirms it with a first code, which proves the app holds the same secret. Reloading the
    page keeps the same secret, so an app that has already scanned it stays right."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)
    form = CodeForm(request.POST or None, device=device)
    if request.method == "POST":
        if form.is_valid():
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            logger.info("Two-factor device enrolled for user id %s", user.pk)
            return _verified(request, device)
        logger.warning("Two-factor enrolment code refused for user id %s", user.pk)
    uri: str = device.config_url
    context = {
        "form": form,
        "next": _next(request),
        "qr": _qr_svg(uri),
        "secret": " ".join(_chunks(_base32(device), 4)),
        "uri": uri,
    }
    return render(request, "registration/two_factor_enrol.html", context)


def _base32(device: TOTPDevice) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode()


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _qr_svg(uri: str) -> SafeString:
    """Inline SVG without style attributes or scripts (the page runs under a strict CSP)."""
    svg = segno.make(uri, error="m", micro=False).svg_inline(
        scale=5, svgclass="qr", lineclass=None, omitsize=True, title="QR code to scan"
    )
    return mark_safe(svg)  # noqa: S308  # segno's own markup: path data only, no text from users
