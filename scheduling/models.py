"""Courses and their sessions. (Sites, rooms, staff, participants and bookings come with
enrolment.)"""

from django.db import models

from protocol.models import ProtocolVersion


class Course(models.Model):
    """A participant's course: planned with, and kept on, one protocol version. PROTECT: a
    version that a course uses can never disappear."""

    protocol_version = models.ForeignKey(
        ProtocolVersion, on_delete=models.PROTECT, related_name="courses"
    )
    start_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"course {self.pk} on {self.protocol_version}"
