"""Markers (reading positions synced between apps) and preferences."""

from __future__ import annotations

import httpx


async def test_markers_are_saved_versioned_and_read_back(alice_api: httpx.AsyncClient,
                                                         bob_api: httpx.AsyncClient) -> None:
    assert (await alice_api.get("/api/v1/markers", params={"timeline[]": "home"})).json() == {}
    saved = await alice_api.post("/api/v1/markers", data={"home[last_read_id]": "103206604258487607"})
    assert saved.status_code == 200
    home = saved.json()["home"]
    assert (home["last_read_id"], home["version"]) == ("103206604258487607", 0)
    assert home["updated_at"].endswith("Z")
    again = await alice_api.post("/api/v1/markers", json={"home": {"last_read_id": "103206604258487700"},
                                                         "notifications": {"last_read_id": "5"}})
    assert again.json()["home"]["version"] == 1 and again.json()["notifications"]["last_read_id"] == "5"
    both = "timeline[]=home&timeline[]=notifications&timeline[]=x"
    read = (await alice_api.get(f"/api/v1/markers?{both}")).json()
    assert set(read) == {"home", "notifications"} and read["home"]["last_read_id"] == "103206604258487700"
    assert (await bob_api.get("/api/v1/markers", params={"timeline[]": "home"})).json() == {}


async def test_bad_markers_are_refused(alice_api: httpx.AsyncClient) -> None:
    for body in ({}, {"home[last_read_id]": "abc"}, {"other[last_read_id]": "1"}):
        response = await alice_api.post("/api/v1/markers", data=body)
        assert response.status_code == 422 and "error" in response.json(), body
    assert (await alice_api.get("/api/v1/markers", params={"timeline[]": "home"})).json() == {}


async def test_preferences_are_the_posting_defaults(alice_api: httpx.AsyncClient) -> None:
    await alice_api.patch("/api/v1/accounts/update_credentials",
                          data={"source[privacy]": "unlisted", "source[sensitive]": "true",
                                "source[language]": "fr"})
    prefs = (await alice_api.get("/api/v1/preferences")).json()
    assert prefs["posting:default:visibility"] == "unlisted"
    assert prefs["posting:default:sensitive"] is True and prefs["posting:default:language"] == "fr"
    assert prefs["reading:expand:spoilers"] is False
