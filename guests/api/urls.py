from django.urls import path

from guests.api import checkin, reminders, views

urlpatterns = [
    path("event", views.EventListCreate.as_view()),
    path("event/<str:event_id>", views.EventDetail.as_view()),
    path("event/<str:event_id>/reminders", reminders.ReminderList.as_view()),
    path("event/<str:event_id>/reminders/<str:reminder_id>", reminders.ReminderDetail.as_view()),
    path("guest", views.GuestCreate.as_view()),
    path("guest/<str:attendee_id>", views.GuestDetail.as_view()),
    path("checkin", checkin.CheckInView.as_view()),
]
