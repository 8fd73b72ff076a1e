from __future__ import annotations

from engine import checklist, config


def test_all_eight_stages_in_order() -> None:
    assert checklist.STAGE_IDS == ("sanity", "dry_run", "mini", "full", "eval", "export",
                                   "deploy", "advice")
    assert [s.number for s in checklist.STAGES] == list(range(1, 9))


def test_item_ids_are_unique_and_prefixed_by_their_stage() -> None:
    ids = [i.id for s in checklist.STAGES for i in s.items]
    assert len(ids) == len(set(ids))
    for s in checklist.STAGES:
        assert s.items, s.id
        for item in s.items:
            assert item.id.startswith(s.id + ".")


def test_every_target_placeholder_names_a_config_key() -> None:
    cfg = config.defaults()
    for item in checklist.ITEMS.values():
        for text in (item.title, item.target, item.proof):
            rendered = checklist.render(text, cfg)
            assert "{" not in rendered, (item.id, rendered)


def test_seed_numbers_come_from_the_config() -> None:
    cfg = config.defaults()
    cfg["sanity"]["max_avg_tokens"] = 1000
    title = checklist.render(checklist.ITEMS["sanity.avg_tokens"].title, cfg)
    assert title == "Avg tokens < 1000"


def test_the_engine_names_the_required_items_a_stage_skipped() -> None:
    from engine.worker import unproved

    checks = {"deploy.modelfile": "pass", "deploy.create": "skip", "deploy.smoke": "fail",
              "deploy.docker": "skip", "not.an.item": "skip"}
    # a skipped optional item (docker) leaves nothing unproved; a required one does
    assert unproved(checks) == ["deploy.create"]
    assert unproved({"deploy.docker": "skip"}) == []
