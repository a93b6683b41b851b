"""A doctor's professional details (printed on prescriptions) are set by the clinic admin."""

from app.auth.policy import Role


def test_the_admin_sets_a_doctors_registration(as_admin, factory, clinic, sql):
    doctor = factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")
    page = f"/staff/{doctor.id}"
    assert "Professional details" in as_admin.get(page).get_data(as_text=True)
    bad = as_admin.post(f"{page}/professional", {"registration_number": "KMC<12>", "speciality": "ENT"}, page=page)
    assert bad.status_code == 422 and "Use letters, digits" in bad.get_data(as_text=True)
    assert 'value="ENT"' in bad.get_data(as_text=True)
    saved = as_admin.post(f"{page}/professional", {"qualifications": "MBBS, MS (ENT)", "speciality": "ENT",
                                                   "registration_number": "kmc-4521",
                                                   "registration_council": "Karnataka Medical Council"}, page=page)
    assert saved.status_code == 303
    assert sql("SELECT qualifications, speciality, registration_number, registration_council FROM staff_user "
               "WHERE id = :i", i=doctor.id) == [("MBBS, MS (ENT)", "ENT", "KMC-4521", "Karnataka Medical Council")]


def test_only_doctors_have_professional_details(as_admin, factory, clinic):
    nurse = factory.person(clinic, Role.NURSE, name="Nurse Asha")
    assert "Professional details" not in as_admin.get(f"/staff/{nurse.id}").get_data(as_text=True)


def test_a_doctor_shared_with_another_clinic_is_changed_only_by_an_admin_of_both(as_admin, factory, clinic,
                                                                                 other_clinic, sql):
    shared = factory.person([clinic, other_clinic], Role.DOCTOR, name="Dr Shared")
    page = f"/staff/{shared.id}"
    assert "only that clinic's admin can change these" in as_admin.get(page).get_data(as_text=True)
    refused = as_admin.post(f"{page}/professional", {"registration_number": "FAKE/123"}, page=page)
    assert refused.status_code == 403
    assert sql("SELECT registration_number FROM staff_user WHERE id = :i", i=shared.id) == [(None,)]


def test_control_characters_are_dropped(as_admin, factory, clinic, sql):
    doctor = factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")
    page = f"/staff/{doctor.id}"
    assert as_admin.post(f"{page}/professional", {"qualifications": "MBBS\x00, MD"}, page=page).status_code == 422
    assert as_admin.post(f"{page}/professional", {"qualifications": "MBBS\x07, MD"}, page=page).status_code == 303
    assert sql("SELECT qualifications FROM staff_user WHERE id = :i", i=doctor.id) == [("MBBS, MD",)]
