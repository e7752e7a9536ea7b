"""HTTP routes of booking: availability (admin), the patient's signed-link booking, and staff bookings."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from intake.booking.availability import AvailabilityService
from intake.booking.patient import LinkInvalid, PatientBooking
from intake.booking.schemas import (
    BookIn,
    BookingOut,
    BookingPatch,
    ExceptionIn,
    ExceptionOut,
    LocationSettingsIn,
    LocationSettingsOut,
    ManageIn,
    PatientBookingOut,
    RescheduleIn,
    RuleIn,
    RuleOut,
    ScheduleOut,
    SlotsOut,
    StaffBookingIn,
    StaffSlotsOut,
)
from intake.booking.staff import StaffBooking
from intake.db.models import StaffMember
from intake.error_shape import JSON_BODY, documented
from intake.staff.guards import STAFF, admin_only
from intake.vocabulary import BookingStatusName, Location

From = Annotated[dt.datetime | None, QueryParameter(name="from", description="UTC ISO time, with its offset")]
To = Annotated[dt.datetime | None, QueryParameter(name="to", description="UTC ISO time, with its offset")]
NoStore = {"Cache-Control": "no-store"}


def _bad_link(_: Request[Any, Any, Any], exc: LinkInvalid) -> Response[dict[str, Any]]:
    return Response({"status_code": 401, "detail": exc.detail, "errors": []}, status_code=401, headers=NoStore)


class AvailabilityController(Controller):
    """Every staff member may read the hours; only admins change them."""

    path = "/api/availability"
    tags = ["availability"]
    security = STAFF

    @get(
        "/rules",
        operation_id="listAvailabilityRules",
        summary="Clinicians' weekly hours per location",
        responses=documented(401, 422),
    )
    async def list_rules(
        self,
        availability_service: NamedDependency[AvailabilityService],
        staff_id: FromQuery[uuid.UUID | None] = None,
        location: FromQuery[Location | None] = None,
    ) -> list[RuleOut]:
        return await availability_service.list_rules(staff_id=staff_id, location=location)

    @post(
        "/rules",
        operation_id="createAvailabilityRule",
        summary="Add weekly hours of a clinician at a location, clinic local time (admin)",
        guards=[admin_only],
        responses=documented(401, 403, 409, *JSON_BODY),
    )
    async def create_rule(
        self,
        data: JSONBody[RuleIn],
        request: Request[StaffMember, Any, Any],
        availability_service: NamedDependency[AvailabilityService],
    ) -> RuleOut:
        return await availability_service.create_rule(rule=data, actor_id=request.user.id)

    @delete(
        "/rules/{rule_id:uuid}",
        operation_id="deleteAvailabilityRule",
        summary="Remove weekly hours; booked consultations stay (admin)",
        guards=[admin_only],
        responses=documented(401, 403, 404),
    )
    async def delete_rule(
        self,
        rule_id: FromPath[uuid.UUID],
        request: Request[StaffMember, Any, Any],
        availability_service: NamedDependency[AvailabilityService],
    ) -> None:
        await availability_service.delete_rule(rule_id=rule_id, actor_id=request.user.id)

    @get(
        "/exceptions",
        operation_id="listAvailabilityExceptions",
        summary="Holidays and time off",
        responses=documented(401, 422),
    )
    async def list_exceptions(
        self,
        availability_service: NamedDependency[AvailabilityService],
        at_from: From = None,
        at_to: To = None,
    ) -> list[ExceptionOut]:
        return await availability_service.list_exceptions(at_from=at_from, at_to=at_to)

    @post(
        "/exceptions",
        operation_id="createAvailabilityException",
        summary="Block time: a holiday, a location closed, a clinician's time off (admin)",
        guards=[admin_only],
        responses=documented(401, 403, *JSON_BODY),
    )
    async def create_exception(
        self,
        data: JSONBody[ExceptionIn],
        request: Request[StaffMember, Any, Any],
        availability_service: NamedDependency[AvailabilityService],
    ) -> ExceptionOut:
        return await availability_service.create_exception(exception=data, actor_id=request.user.id)

    @delete(
        "/exceptions/{exception_id:uuid}",
        operation_id="deleteAvailabilityException",
        summary="Remove an exception (admin)",
        guards=[admin_only],
        responses=documented(401, 403, 404),
    )
    async def delete_exception(
        self,
        exception_id: FromPath[uuid.UUID],
        request: Request[StaffMember, Any, Any],
        availability_service: NamedDependency[AvailabilityService],
    ) -> None:
        await availability_service.delete_exception(exception_id=exception_id, actor_id=request.user.id)

    @get(
        "/settings/{location:str}",
        operation_id="getLocationSettings",
        summary="A location's consultation length and buffer (defaults: 30 and 0 minutes)",
        responses=documented(401, 404),
    )
    async def get_settings(
        self, location: FromPath[str], availability_service: NamedDependency[AvailabilityService]
    ) -> LocationSettingsOut:
        return await availability_service.location_settings(location=location)

    @put(
        "/settings/{location:str}",
        operation_id="updateLocationSettings",
        summary="Set a location's consultation length and buffer (admin)",
        guards=[admin_only],
        responses=documented(401, 403, 404, *JSON_BODY),
    )
    async def put_settings(
        self,
        location: FromPath[str],
        data: JSONBody[LocationSettingsIn],
        request: Request[StaffMember, Any, Any],
        availability_service: NamedDependency[AvailabilityService],
    ) -> LocationSettingsOut:
        return await availability_service.put_location_settings(
            location=location, values=data, actor_id=request.user.id
        )


class PatientBookingController(Controller):
    """What the clinic site's booking pages call, with the token of the patient's emailed link."""

    path = "/api/booking"
    tags = ["booking"]
    opt = {"public": True}
    exception_handlers = {LinkInvalid: _bad_link}

    @get(
        "/slots",
        operation_id="getBookingSlots",
        summary="Free consultation times at the person's location",
        responses=documented(401, 404, 422),
    )
    async def slots(
        self,
        patient_booking: NamedDependency[PatientBooking],
        token: Annotated[
            str,
            QueryParameter(
                max_length=2000,
                description="the booking link's token, or a confirmation email's manage token (to reschedule)",
            ),
        ],
    ) -> Response[SlotsOut]:
        return Response(await patient_booking.slots_for_link(token=token), headers=NoStore)

    @post(
        "/",
        operation_id="bookConsultation",
        summary="Book one of the free times",
        status_code=201,
        responses=documented(401, 404, 409, *JSON_BODY),
    )
    async def book(
        self,
        data: JSONBody[BookIn],
        patient_booking: NamedDependency[PatientBooking],
    ) -> Response[PatientBookingOut]:
        body = await patient_booking.book_by_link(token=data.token, starts_at=data.starts_at)
        return Response(body, status_code=201, headers=NoStore)

    @get(
        "/manage",
        operation_id="getMyBooking",
        summary="The booking a confirmation email's link is about",
        responses=documented(401, 404, 422),
    )
    async def manage(
        self,
        patient_booking: NamedDependency[PatientBooking],
        token: Annotated[str, QueryParameter(max_length=2000, description="the manage link's token")],
    ) -> Response[PatientBookingOut]:
        return Response(await patient_booking.manage_view(token=token), headers=NoStore)

    @post(
        "/cancel",
        operation_id="cancelMyBooking",
        summary="Cancel (until the change cut-off)",
        status_code=200,
        responses=documented(401, 404, 409, *JSON_BODY),
    )
    async def cancel(
        self,
        data: JSONBody[ManageIn],
        patient_booking: NamedDependency[PatientBooking],
    ) -> Response[PatientBookingOut]:
        return Response(await patient_booking.cancel_by_link(token=data.token), headers=NoStore)

    @post(
        "/reschedule",
        operation_id="rescheduleMyBooking",
        summary="Move to another free time (until the change cut-off)",
        status_code=200,
        responses=documented(401, 404, 409, *JSON_BODY),
    )
    async def reschedule(
        self,
        data: JSONBody[RescheduleIn],
        patient_booking: NamedDependency[PatientBooking],
    ) -> Response[PatientBookingOut]:
        body = await patient_booking.reschedule_by_link(token=data.token, starts_at=data.starts_at)
        return Response(body, status_code=200, headers=NoStore)


class LeadBookingController(Controller):
    path = "/api/leads/{lead_id:uuid}"
    tags = ["bookings"]
    security = STAFF

    @get(
        "/slots",
        operation_id="listLeadSlots",
        summary="Free times for a lead, per clinician (staff booking by phone)",
        responses=documented(401, 404, 422),
    )
    async def slots(
        self,
        lead_id: FromPath[uuid.UUID],
        staff_booking: NamedDependency[StaffBooking],
        location: FromQuery[Location | None] = None,
        clinician_id: FromQuery[uuid.UUID | None] = None,
        at_from: From = None,
    ) -> Response[StaffSlotsOut]:
        body = await staff_booking.slots_for_staff(
            lead_id=lead_id, location=location, clinician_id=clinician_id, at_from=at_from
        )
        return Response(body, headers=NoStore)

    @post(
        "/bookings",
        operation_id="createLeadBooking",
        summary="Book a consultation for a lead",
        status_code=201,
        responses=documented(401, 404, 409, *JSON_BODY),
    )
    async def create(
        self,
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[StaffBookingIn],
        request: Request[StaffMember, Any, Any],
        staff_booking: NamedDependency[StaffBooking],
    ) -> Response[BookingOut]:
        body = await staff_booking.book_for_lead(lead_id=lead_id, data=data, actor=request.user)
        return Response(body, status_code=201, headers=NoStore)


class BookingController(Controller):
    path = "/api/bookings"
    tags = ["bookings"]
    security = STAFF

    @get(
        "/",
        operation_id="listBookings",
        summary="The schedule: bookings by time, clinician, location",
        responses=documented(401, 422),
    )
    async def schedule(
        self,
        request: Request[StaffMember, Any, Any],
        staff_booking: NamedDependency[StaffBooking],
        at_from: From = None,
        at_to: To = None,
        clinician_id: FromQuery[uuid.UUID | None] = None,
        location: FromQuery[Location | None] = None,
        status: FromQuery[BookingStatusName | None] = None,
    ) -> Response[ScheduleOut]:
        body = await staff_booking.schedule(
            at_from=at_from,
            at_to=at_to,
            clinician_id=clinician_id,
            location=location,
            status=status,
            actor=request.user,
        )
        return Response(body, headers=NoStore)

    @patch(
        "/{booking_id:uuid}",
        operation_id="updateBooking",
        summary="Move ({starts_at, clinician_id?}: a new booking replaces this one) or set the status",
        responses=documented(401, 404, 409, *JSON_BODY),
    )
    async def update(
        self,
        booking_id: FromPath[uuid.UUID],
        data: JSONBody[BookingPatch],
        request: Request[StaffMember, Any, Any],
        staff_booking: NamedDependency[StaffBooking],
    ) -> Response[BookingOut]:
        body = await staff_booking.change(booking_id=booking_id, patch=data, actor=request.user)
        return Response(body, status_code=200, headers=NoStore)
