from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        # every app's admin module is loaded by now (the admin app's ready runs first)
        from django.contrib import admin

        from scheduling.admin import restrict_unlisted

        restrict_unlisted(admin.site)
