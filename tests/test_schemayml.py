"""dbt's schema.yml read beside elt's headers: jaffle_shop's property files work unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from click.testing import CliRunner
from helpers import elt

from elt.cli import cli

CUSTOMERS = "id,first_name,last_name\n1,Michael,P.\n2,Shawn,M.\n3,Kathleen,P.\n"
ORDERS = ("id,user_id,order_date,status\n1,1,2018-01-01,returned\n2,3,2018-01-02,completed\n"
          "3,2,2018-01-04,placed\n4,1,2018-01-05,shipped\n")
PAYMENTS = ("id,order_id,payment_method,amount\n1,1,credit_card,1000\n2,2,coupon,2000\n"
            "3,3,bank_transfer,100\n4,4,gift_card,2500\n5,4,coupon,100\n")

MODELS = {
    "staging/stg_customers.sql":
        "select id as customer_id, first_name, last_name from raw.raw_customers",
    "staging/stg_orders.sql":
        "select id as order_id, user_id as customer_id, order_date, status from raw.raw_orders",
    "staging/stg_payments.sql":
        "select id as payment_id, order_id, payment_method, amount / 100 as amount "
        "from raw.raw_payments",
    "customers.sql":
        "select c.customer_id, c.first_name, c.last_name, min(o.order_date) as first_order, "
        "max(o.order_date) as most_recent_order, count(o.order_id) as number_of_orders, "
        "sum(p.amount) as customer_lifetime_value from stg_customers c "
        "left join stg_orders o using (customer_id) left join stg_payments p using (order_id) "
        "group by all",
    "orders.sql":
        "select o.order_id, o.customer_id, o.order_date, o.status, sum(p.amount) as amount "
        "from stg_orders o left join stg_payments p using (order_id) group by all",
}

# jaffle_shop's models/staging/schema.yml and models/schema.yml, as dbt-labs ships them.
STAGING_SCHEMA = """\
version: 2

models:
  - name: stg_customers
    columns:
      - name: customer_id
        tests:
          - unique
          - not_null

  - name: stg_orders
    columns:
      - name: order_id
        tests:
          - unique
          - not_null
      - name: status
        tests:
          - accepted_values:
              values: ['placed', 'shipped', 'completed', 'return_pending', 'returned']

  - name: stg_payments
    columns:
      - name: payment_id
        tests:
          - unique
          - not_null
      - name: payment_method
        tests:
          - accepted_values:
              values: ['credit_card', 'coupon', 'bank_transfer', 'gift_card']
"""

SCHEMA = """\
version: 2

models:
  - name: customers
    description: This table has basic information about a customer, as well as some derived facts based on a customer's orders

    columns:
      - name: customer_id
        description: This is a unique identifier for a customer
        tests:
          - unique
          - not_null

      - name: first_name
        description: Customer's first name. PII.

      - name: number_of_orders
        description: Count of the number of orders a customer has placed

  - name: orders
    description: This table has basic information about orders, as well as some derived facts based on payments

    columns:
      - name: order_id
        tests:
          - unique
          - not_null
        description: This is a unique identifier for an order

      - name: customer_id
        description: Foreign key to the customers table
        tests:
          - not_null
          - relationships:
              to: ref('customers')
              field: customer_id

      - name: status
        description: '{{ doc("orders_status") }}'
        tests:
          - accepted_values:
              values: ['placed', 'shipped', 'completed', 'return_pending', 'returned']

      - name: amount
        description: Total amount (AUD) of the order
        tests:
          - not_null
"""  # noqa: E501 - verbatim from jaffle_shop (its long descriptions)


def _jaffle(tmp_path: Path) -> Path:
    """An `elt init` project with jaffle_shop's seeds, models and both schema.yml files."""
    root = tmp_path / "jaffle"
    assert CliRunner().invoke(cli, ["init", str(root), "-q"]).exit_code == 0
    for name, text in (("raw_customers", CUSTOMERS), ("raw_orders", ORDERS),
                       ("raw_payments", PAYMENTS)):
        (root / "seeds" / f"{name}.csv").write_text(text)
    for rel, sql in MODELS.items():
        (root / "models" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "models" / rel).write_text(sql + "\n")
    (root / "models" / "staging" / "schema.yml").write_text(STAGING_SCHEMA)
    (root / "models" / "schema.yml").write_text(SCHEMA)
    return root


def _tests(root: Path) -> dict[str, str]:
    """Test name -> status of its last run, from `elt ls`."""
    run = elt(root, "ls", "-s", "kind:test", "--format", "json")
    assert run.code == 0, run.output
    return {row["name"]: row["status"] for row in json.loads(run.stdout)}


def test_jaffle_shop_schema_yml_files_build_unchanged(tmp_path: Path) -> None:
    root = _jaffle(tmp_path)
    run = elt(root, "build")
    assert run.code == 0, run.output
    tests = _tests(root)
    assert {"unique_stg_customers_customer_id", "not_null_orders_amount",
            "accepted_values_stg_orders_status",
            "relationships_orders_customer_id__customers__customer_id"} <= set(tests)
    jaffle = {t: s for t, s in tests.items() if "people" not in t}
    assert len(jaffle) == 16 and set(jaffle.values()) == {"success"}
    con = duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from main.customers").fetchone() == (3,)
    finally:
        con.close()


def test_a_failing_dbt_test_fails_the_build_and_severity_warn_only_warns(tmp_path: Path) -> None:
    root = _jaffle(tmp_path)
    (root / "seeds" / "raw_orders.csv").write_text(ORDERS + "5,9,2018-01-06,lost\n")
    (root / "seeds" / "raw_payments.csv").write_text(PAYMENTS + "6,5,coupon,100\n")
    run = elt(root, "build")
    assert run.code != 0
    assert "accepted_values_stg_orders_status" in run.output
    assert "relationships_orders_customer_id" in run.output
    schema = (root / "models" / "schema.yml").read_text()
    staging = (root / "models" / "staging" / "schema.yml").read_text()
    relaxed = """          - relationships:
              to: ref('customers')
              field: customer_id
              config:
                severity: WARN
"""
    (root / "models" / "schema.yml").write_text(schema.replace(
        "          - relationships:\n              to: ref('customers')\n"
        "              field: customer_id\n", relaxed).replace(
        "              values: ['placed', 'shipped', 'completed', 'return_pending', 'returned']",
        "              values: ['placed', 'shipped', 'completed', 'return_pending', 'returned']\n"
        "              config:\n                where: \"customer_id < 9\""))
    (root / "models" / "staging" / "schema.yml").write_text(staging.replace(
        "        tests:\n          - accepted_values:\n              values: ['placed'",
        "        data_tests:\n          - accepted_values:\n              arguments:\n"
        "                values: ['lost', 'placed'"))
    run = elt(root, "build")
    assert run.code == 0, run.output
    assert "warn" in run.output.lower()


def test_unknown_key_in_schema_yml_is_a_did_you_mean_error_with_file_and_line(
        tmp_path: Path) -> None:
    root = _jaffle(tmp_path)
    schema = (root / "models" / "schema.yml").read_text()
    (root / "models" / "schema.yml").write_text(
        schema.replace("      - name: first_name\n        description:",
                       "      - name: first_name\n        descripton:"))
    run = elt(root, "build")
    assert run.code == 1
    line = next(n for n, text in enumerate(schema.splitlines(), 1) if "name: first_name" in text)
    assert (f"models/schema.yml:{line + 1}: model customers: column first_name: unknown key "
            "descripton; did you mean description?") in run.output
    assert "Traceback" not in run.output


def test_schema_yml_naming_an_unknown_model_or_test_names_the_line(tmp_path: Path) -> None:
    root = _jaffle(tmp_path)
    staging = (root / "models" / "staging" / "schema.yml").read_text()
    (root / "models" / "staging" / "schema.yml").write_text(
        staging.replace("name: stg_payments", "name: stg_paymnts"))
    run = elt(root, "build")
    assert run.code == 1
    line = next(n for n, t in enumerate(staging.splitlines(), 1) if "stg_payments" in t)
    assert f"models/staging/schema.yml:{line}: unknown model stg_paymnts" in run.output
    assert "did you mean stg_payments?" in run.output
    (root / "models" / "staging" / "schema.yml").write_text(
        staging.replace("- unique\n          - not_null\n\n  - name: stg_orders",
                        "- uniqe\n          - not_null\n\n  - name: stg_orders"))
    run = elt(root, "build")
    assert run.code == 1
    assert "models/staging/schema.yml:8: model stg_customers: column customer_id: unknown test " \
           "'uniqe'; did you mean unique?" in run.output


def test_descriptions_from_schema_yml_reach_the_manifest(tmp_path: Path) -> None:
    root = _jaffle(tmp_path)
    assert elt(root, "build").code == 0
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert "This is a unique identifier for a customer" in text
    assert "This table has basic information about orders" in text
