# mypy: allow-subclassing-any
"""``POST /api/auth/token/``: an API token for a user name and password (and a two-factor code
for those who need one). Tokens are knox's: stored hashed, expiring after API_TOKEN_HOURS,
revoked when the password changes (config.auth.RevokeApiTokensOnPasswordChange).

Failures go through ``django.contrib.auth.authenticate`` with the Django request, so
django-axes counts them and locks out exactly as on the pages; a DRF throttle on top bounds
how fast anyone can try, whatever the user name."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_totp.models import TOTPDevice
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.api import ErrorSerializer, FieldErrorsSerializer
from config.auth import locked_out_message, two_factor_required

logger = logging.getLogger(__name__)

BAD_CREDENTIALS = "The user name or password is not right. Check both and try again."
CODE_NEEDED = (
    "This account signs in with two factors: send otp_token, the 6-digit code from your "
    "authenticator app."
)
NO_DEVICE = (
    "This account has no authenticator app set up yet: sign in once on the web pages to set "
    "it up, then ask for a token again."
)
WRONG_CODE = (
    "That code was not accepted: send the code your authenticator app shows now. After "
    "several wrong codes, wait a minute before trying again."
)


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = gettext_lazy("Too many failed sign-ins.")


class TokenCredentialsSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)  # Django's user name length
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    otp_token = serializers.RegexField(
        r"^\d{6}$",
        required=False,
        help_text="the 6-digit code from the authenticator app; required for admins, "
        "coordinators and superusers when two-factor sign-in is on",
    )


class TokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="send as `Authorization: Token <token>`")
    expiry = serializers.DateTimeField(help_text="when the token stops working")


class TokenApi(APIView):
    # Credentials travel in the body, so no authentication class runs (and no CSRF check:
    # nothing here acts on an existing session). Hence no 401 or 403 in its schema either.
    schema = AutoSchema()
    authentication_classes: list[type[Any]] = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(
        auth=[],
        summary="Get an API token",
        description="A token for a user name and password, and for admins, coordinators and "
        "superusers the current code of their authenticator app. It works until `expiry` "
        "(API_TOKEN_HOURS) or until the user's password changes.",
        request=TokenCredentialsSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(
                FieldErrorsSerializer,
                description="Missing fields, a wrong user name or password, or a missing or "
                "wrong two-factor code.",
            ),
            429: OpenApiResponse(
                ErrorSerializer,
                description="Too many tries: locked out after repeated failures for this user "
                "name from this address, or more than 10 requests a minute from it.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = TokenCredentialsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        django_request = request._request  # axes reads and flags the Django request
        user = authenticate(
            django_request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if getattr(django_request, "axes_locked_out", False):
            raise LockedOut(locked_out_message())  # AxesMiddleware answers with lockout_response
        if user is None:
            raise exceptions.ValidationError({"non_field_errors": [BAD_CREDENTIALS]})
        if two_factor_required(user):
            _check_code(user, data.validated_data.get("otp_token"))
        instance, token = AuthToken.objects.create(user)
        user_logged_in.send(sender=type(user), request=django_request, user=user)
        output = TokenSerializer({"token": token, "expiry": instance.expiry})
        return Response(output.data)


def _check_code(user: Any, code: str | None) -> None:
    """django-otp checks the code and throttles wrong ones on the device itself."""
    if not code:
        raise exceptions.ValidationError({"otp_token": [CODE_NEEDED]})
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        raise exceptions.ValidationError({"otp_token": [NO_DEVICE]})
    if not device.verify_token(code):
        logger.warning("Two-factor code refused at the token endpoint for user id %s", user.pk)
        raise exceptions.ValidationError({"otp_token": [WRONG_CODE]})
