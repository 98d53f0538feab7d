"""Sign-in rules that Django's settings alone do not give: who must use a second factor, the
one door an unverified session may pass, the absolute end of a session, the lockout answer and
revoking API tokens when a password changes.

The libraries do the work (django-axes counts failures and locks, django-otp verifies codes,
knox stores tokens hashed with an expiry); this module only wires them to the clinic's roles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from scheduling.access import Role, role_of

logger = logging.getLogger(__name__)

#: the session key holding when the user signed in (seconds since the epoch)
SIGNED_IN_AT = "signed_in_at"

LOCKED_OUT = (
    "Too many failed sign-ins for this user name from this computer. Wait {minutes} minutes "
    "without trying (each new try starts the wait again), or ask an administrator to unlock "
    "the account."
)
VERIFY_FIRST = (
    "Complete two-factor sign-in first: open the scheduler in a browser, enter the code from "
    "your authenticator app, then try again."
)


def two_factor_required(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Admins and coordinators can reach every participant of their sites and change the
    set-up, and superusers every site: a stolen password alone must not open that."""
    if not settings.TWO_FACTOR_REQUIRED or not user.is_authenticated:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return role_of(user) in (Role.ADMIN, Role.COORDINATOR)


def _open_paths() -> tuple[str, ...]:
    """What a signed-in but not yet verified user may reach: the second step itself, signing
    out or in again, static files and the token endpoint (which asks for its own code)."""
    return (
        reverse("two-factor"),
        reverse("logout"),
        reverse("login"),
        reverse("api:token"),
        settings.STATIC_URL if settings.STATIC_URL.startswith("/") else f"/{settings.STATIC_URL}",
    )


class SignInMiddleware:
    """Ends a session ``SESSION_MAX_HOURS`` after sign-in however busy it is (the idle
    timeout is Django's own ``SESSION_COOKIE_AGE``), and keeps a user who must use a second
    factor on the two-factor pages until they have. Goes after django-otp's OTPMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user = request.user
        if not user.is_authenticated:
            return self.get_response(request)
        signed_in_at = request.session.setdefault(SIGNED_IN_AT, int(time.time()))
        if time.time() - signed_in_at > settings.SESSION_MAX_HOURS * 3600:
            logout(request)
            return redirect_to_login(request.get_full_path())
        if (
            two_factor_required(user)
            and not user.is_verified()  # type: ignore[attr-defined]  # set by OTPMiddleware
            and not request.path_info.startswith(_open_paths())
        ):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": VERIFY_FIRST}, status=403)
            return redirect_to_login(request.get_full_path(), reverse("two-factor"))
        return self.get_response(request)


@receiver(user_logged_in, dispatch_uid="config.auth.remember_sign_in")
def remember_sign_in(sender: type, request: HttpRequest | None, **kwargs: Any) -> None:
    """Starts the absolute session clock. Only for session sign-ins: the token endpoint sends
    the same signal and must not leave a session behind."""
    if request is not None and SESSION_KEY in getattr(request, "session", {}):
        request.session[SIGNED_IN_AT] = int(time.time())


def forwarded_client_address(request: HttpRequest) -> str | None:
    """django-axes' client address behind the TLS proxy (AXES_CLIENT_IP_CALLABLE): the last
    X-Forwarded-For entry, appended by the proxy; those before it are whatever the client sent.
    DRF's throttles take the same entry (NUM_PROXIES = 1)."""
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or request.META.get("REMOTE_ADDR")


def locked_out_message() -> str:
    return LOCKED_OUT.format(minutes=int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """django-axes' answer to a locked-out sign-in (AXES_LOCKOUT_CALLABLE): JSON on the API,
    a page elsewhere (the pages and the admin), both 429 with Retry-After."""
    message = locked_out_message()
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


class RevokeApiTokensOnPasswordChange:
    """Not a rule for passwords: a hook Django calls after every password change that went
    through ``set_password`` (the admin, ``changepassword``, the password change page), which is
    exactly when every API token the user holds must stop working. Django has no signal for it,
    and a save signal cannot tell a new password from a re-hash of the same one."""

    def validate(self, password: str, user: AbstractBaseUser | None = None) -> None:
        return None

    def password_changed(self, password: str, user: AbstractBaseUser | None = None) -> None:
        if user is None or user.pk is None:
            return
        from knox.models import AuthToken  # knox's model: not importable while settings load

        revoked, _ = AuthToken.objects.filter(user__pk=user.pk).delete()
        if revoked:
            logger.info("Password changed for user id %s: %d API tokens revoked", user.pk, revoked)

    def get_help_text(self) -> str:
        return ""
