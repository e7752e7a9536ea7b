"""Booking the free consultation: availability, slots, bookings, and the signed links patients use."""
