"""What scheduling announces, for the domains above it to follow (messaging plans and ends reminders).

Scheduling never imports those domains: it sends a blinker signal and they listen. Every signal is sent
with the change's database session as its sender, before the caller commits, so whatever a receiver writes
commits or rolls back with the appointment change itself. Receivers connect when their module is imported
(create_app imports every domain through its blueprints; the worker builds the same app).
"""

from blinker import Namespace

_signals = Namespace()

# A new appointment was booked (or a moved one booked at its new time): clinic=, appointment=.
appointment_booked = _signals.signal("appointment-booked")
# An appointment was moved: clinic=, old= (now "rescheduled"), new=.
appointment_moved = _signals.signal("appointment-moved")
# An appointment's status changed (confirmed, cancelled, arrived, completed…): clinic=, appointment=, action=.
appointment_status_changed = _signals.signal("appointment-status-changed")
