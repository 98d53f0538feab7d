from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        # every app's admin module is loaded by now (the admin app's ready runs first)
        from django.contrib import admin

        from scheduling import checks  # noqa: F401  (registers the deployment checks)
        from scheduling.admin import restrict_unlisted

        restrict_unlisted(admin.site)
        _name_people_once()


def _name_people_once() -> None:
    """A person reads the same name for a staff member everywhere Django names a user by
    itself (the admin's lists, choices and autocomplete, the audit history's "changed by"):
    the one display name of scheduling.clock (full name if set, else the user name)."""
    from django.contrib.auth.models import User

    from scheduling.clock import display_name

    User.add_to_class("__str__", display_name)
