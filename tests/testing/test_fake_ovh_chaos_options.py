"""What the chaos test needs of the fake OVHcloud API: several callbacks, DLR fault rates."""

from __future__ import annotations

from tests.testing.test_fake_ovh import (
    ANNA,
    CALLBACK,
    MARC,
    job,
    reporting_fake,
    set_faults,
    until,
)

OTHER = "http://gateway-2.test/v1/providers/ovh/secret-token/dlr"


async def test_reports_go_to_each_callback_in_turn() -> None:
    async with reporting_fake(callback_url=f"{CALLBACK}, {OTHER}") as fake:
        await fake.provider.send(job(receivers=[ANNA, MARC]))
        await until(lambda: len(fake.calls) == 2)

    assert sorted(str(url).split("?")[0] for url in fake.calls) == sorted([CALLBACK, OTHER])


async def test_a_dlr_fault_rate_hits_only_some_sms() -> None:
    async with reporting_fake() as fake:
        await set_faults(fake.http, seed=7, dlr={"duplicate": True, "rate": 0.5})
        receivers = [f"+336120000{n:02d}" for n in range(40)]
        await fake.provider.send(job(receivers=receivers))
        await until(lambda: fake.state.stats()["dlr_pushed"] >= 40)
        await until(lambda: len(fake.calls) == fake.state.stats()["dlr_pushed"])

    pushes_per_sms: dict[str, int] = {}
    for url in fake.calls:
        pushes_per_sms[url.params["id"]] = pushes_per_sms.get(url.params["id"], 0) + 1
    assert len(pushes_per_sms) == 40
    twice = sum(1 for n in pushes_per_sms.values() if n == 2)
    assert 5 < twice < 35, twice  # about half, never all or none
    assert set(pushes_per_sms.values()) <= {1, 2}


async def test_a_dlr_fault_rate_of_zero_is_no_fault() -> None:
    async with reporting_fake() as fake:
        dlr = {"duplicate": True, "out_of_order": True, "before_answer": True, "rate": 0.0}
        await set_faults(fake.http, dlr=dlr)
        await fake.provider.send(job())
        assert fake.calls == []  # not pushed before the answer
        await until(lambda: len(fake.calls) == 1)
