from vizgen.sheets import kv_preview, loop_orders


def test_both_loop_orders_visit_every_tile_once_in_their_own_order():
    facts = loop_orders.trace()["facts"]
    fa1, fa2 = facts["fa1_order"].split(", "), facts["fa2_order"].split(", ")
    assert sorted(fa1) == sorted(fa2) and len(fa1) == facts["tiles"] ** 2
    assert fa1[:3] == ["Q0·K0", "Q1·K0", "Q2·K0"]  # K/V outer
    assert fa2[:3] == ["Q0·K0", "Q0·K1", "Q0·K2"]  # Q outer
    for key in ("max_diff_fa1", "max_diff_fa2"):  # e.g. '2.2 × 10⁻¹⁶': below 10⁻¹⁰
        assert " × 10⁻¹" in facts[key] and len(facts[key].split("⁻")[1]) == 2
    assert facts["o_traffic_ratio"] == 2 * facts["big_tiles"]


def test_llama3_70b_kv_cache_with_and_without_gqa():
    facts = kv_preview.trace()["facts"]
    # 2 (K and V) x 80 layers x heads x 128 dims x 2 bytes x 131072 tokens, computed here by hand
    assert facts["mha_128k_gib"] == f"{2 * 80 * 64 * 128 * 2 * 131072 / 2**30:.0f}" == "320"
    assert facts["gqa_128k_gib"] == "40"
