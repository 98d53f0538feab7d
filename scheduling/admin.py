from django.contrib import admin

from scheduling.models import Course


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin[Course]):
    list_display = ["id", "protocol_version", "start_date", "created_at"]
