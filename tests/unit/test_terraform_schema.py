"""tools/terraform's pure core: a CDK binding's jsii assembly and JavaScript -> provider schema."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tools.terraform import jsii, wheels
from tools.terraform.schema import (
    Attribute,
    Block,
    NestedBlock,
    Nesting,
    documented_enum,
    from_json,
    to_json,
)

REGISTRY = "https://registry.terraform.io/providers/hashicorp/example/1.2.3/docs"
STRING = {"primitive": "string"}
NUMBER = {"primitive": "number"}
BOOLEAN = {"union": {"types": [{"primitive": "boolean"}, {"fqn": "cdktn.IResolvable"}]}}
RESOLVABLE = {"fqn": "cdktn.IResolvable"}


def linked(name: str, summary: str = "") -> dict[str, str]:
    """Docs as the binding writes them for an argument: a summary and the Registry link."""
    remarks = (
        f"Docs at Terraform Registry: {{@link {REGISTRY}/resources/thing#{name} Thing#{name}}}"
    )
    return {"summary": summary, "remarks": remarks}


def argument(
    camel: str, name: str, type_: dict[str, Any], optional: bool = True, summary: str = ""
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": camel, "type": type_, "docs": linked(name, summary)}
    if optional:
        entry["optional"] = True
    return entry


def getter(camel: str, type_: dict[str, Any]) -> dict[str, Any]:
    return {"name": camel, "type": type_, "docs": {"stability": "stable"}}


def struct(fqn: str, *properties: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "interface", "datatype": True, "fqn": fqn, "properties": list(properties)}


def cls(fqn: str, base: str, *properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"kind": "class", "base": base, "fqn": fqn, "properties": list(properties), **extra}


def entity(
    fqn: str, base: str, summary: str, config: str, *getters: dict[str, Any]
) -> dict[str, Any]:
    parameters = [{"name": "scope"}, {"name": "id"}, {"name": "config", "type": {"fqn": config}}]
    return cls(
        fqn, base, *getters, docs={"summary": summary}, initializer={"parameters": parameters}
    )


P = "@x/provider-example."
ASSEMBLY: dict[str, Any] = {
    "types": {
        P + "thing.Thing": entity(
            P + "thing.Thing",
            "cdktn.TerraformResource",
            f"Represents a {{@link {REGISTRY}/resources/thing example_thing}}.",
            P + "thing.ThingConfig",
            {"name": "tfResourceType", "type": STRING, "static": True, "const": True},
            getter("name", STRING),
            getter("nameInput", STRING),
            getter("uri", STRING),
            getter("md5Hash", STRING),
            getter("ready", RESOLVABLE),
            getter("effectiveLabels", {"fqn": "cdktn.StringMap"}),
            getter("conditions", {"fqn": P + "thing.ThingConditionsList"}),
            getter(
                "timeoutsInput",
                {"union": {"types": [RESOLVABLE, {"fqn": P + "thing.ThingTimeouts"}]}},
            ),
            getter("pushConfigInput", {"fqn": P + "thing.ThingPushConfig"}),
        ),
        P + "thing.ThingConfig": struct(
            P + "thing.ThingConfig",
            argument("name", "name", STRING, optional=False, summary="The name."),
            argument("id", "id", STRING),
            argument("size", "size", NUMBER),
            argument("enabled", "enabled", BOOLEAN),
            argument("tags", "tags", {"collection": {"kind": "array", "elementtype": STRING}}),
            argument("zones", "zones", {"collection": {"kind": "array", "elementtype": STRING}}),
            argument("labels", "labels", {"collection": {"kind": "map", "elementtype": STRING}}),
            argument(
                "mode",
                "mode",
                STRING,
                summary='How. Default value: "FAST" Possible values: ["FAST", "SLOW"].',
            ),
            argument("pushConfig", "push_config", {"fqn": P + "thing.ThingPushConfig"}),
            argument(
                "rule",
                "rule",
                {
                    "union": {
                        "types": [
                            RESOLVABLE,
                            {
                                "collection": {
                                    "kind": "array",
                                    "elementtype": {"fqn": P + "thing.ThingRule"},
                                }
                            },
                        ]
                    }
                },
                optional=False,
            ),
            argument("timeouts", "timeouts", {"fqn": P + "thing.ThingTimeouts"}),
        ),
        P + "thing.ThingPushConfig": struct(
            P + "thing.ThingPushConfig",
            argument("pushEndpoint", "push_endpoint", STRING, optional=False),
        ),
        P + "thing.ThingPushConfigOutputReference": cls(
            P + "thing.ThingPushConfigOutputReference",
            "cdktn.ComplexObject",
            getter("pushEndpoint", STRING),
            getter("pushEndpointInput", STRING),
            getter("state", STRING),
            getter("internalValue", {"fqn": P + "thing.ThingPushConfig"}),
        ),
        P + "thing.ThingRule": struct(
            P + "thing.ThingRule", argument("key", "key", STRING, optional=False)
        ),
        P + "thing.ThingTimeouts": struct(
            P + "thing.ThingTimeouts", argument("create", "create", STRING)
        ),
        P + "thing.ThingConditionsList": cls(
            P + "thing.ThingConditionsList",
            "cdktn.ComplexList",
            methods=[
                {
                    "name": "get",
                    "returns": {"type": {"fqn": P + "thing.ThingConditionsOutputReference"}},
                }
            ],
        ),
        P + "thing.ThingConditionsOutputReference": cls(
            P + "thing.ThingConditionsOutputReference",
            "cdktn.ComplexObject",
            getter("message", STRING),
            getter("code", NUMBER),
        ),
        P + "dataThing.DataThing": entity(
            P + "dataThing.DataThing",
            "cdktn.TerraformDataSource",
            f"Represents a {{@link {REGISTRY}/data-sources/thing example_thing}}.",
            P + "dataThing.DataThingConfig",
            getter("number", STRING),
        ),
        P + "dataThing.DataThingConfig": struct(
            P + "dataThing.DataThingConfig", argument("project", "project", STRING)
        ),
        P + "provider.ExampleProvider": entity(
            P + "provider.ExampleProvider",
            "cdktn.TerraformProvider",
            f"Represents a {{@link {REGISTRY} example}}.",
            P + "provider.ExampleProviderConfig",
        ),
        P + "provider.ExampleProviderConfig": struct(
            P + "provider.ExampleProviderConfig",
            argument("alias", "alias", STRING),
            argument("region", "region", STRING),
        ),
    }
}

# What the binding's compiled getters say: names camelCase loses, and which lists are sets.
JAVASCRIPT = """
class ThingConditionsOutputReference extends cdktn.ComplexObject {
    get message() {
        return this.getStringAttribute('message');
    }
}
class Thing extends cdktn.TerraformResource {
    constructor(scope, id, config) {
        this._rule = new ThingRuleList(this, "rule", true);
        this._conditions = new ThingConditionsList(this, "conditions", false);
    }
    get md5Hash() {
        return this.getStringAttribute('md5hash');
    }
    get zones() {
        return cdktn.Fn.tolist(this.getListAttribute('zones'));
    }
}
"""


def test_javascript_getters_give_names_and_sets() -> None:
    members = jsii.js_members([JAVASCRIPT])
    assert members["Thing"]["md5Hash"] == jsii.JsMember("md5hash")
    assert members["Thing"]["zones"] == jsii.JsMember("zones", is_set=True)
    assert members["Thing"]["rule"] == jsii.JsMember("rule", is_set=True)
    assert members["Thing"]["conditions"] == jsii.JsMember("conditions", is_set=False)
    assert members["ThingConditionsOutputReference"] == {"message": jsii.JsMember("message")}


def test_a_resource_s_arguments_blocks_and_computed_attributes() -> None:
    schema = jsii.provider_schema(ASSEMBLY, jsii.js_members([JAVASCRIPT]))
    thing = schema.resources["example_thing"]
    assert thing.attributes["name"] == Attribute("string", required=True, description="The name.")
    assert thing.attributes["id"] == Attribute("string", optional=True, computed=True)
    assert thing.attributes["size"].type == "number"
    assert thing.attributes["enabled"].type == "bool"
    assert thing.attributes["tags"].type == ["list", "string"]
    assert thing.attributes["zones"].type == ["set", "string"]
    assert thing.attributes["labels"].type == ["map", "string"]
    assert thing.attributes["mode"].enum == ("FAST", "SLOW")
    # Getters without an argument behind them are computed, under their Terraform names.
    assert thing.attributes["uri"] == Attribute("string", computed=True)
    assert thing.attributes["md5hash"] == Attribute("string", computed=True)
    assert thing.attributes["ready"] == Attribute("bool", computed=True)
    assert thing.attributes["effective_labels"].type == ["map", "string"]
    assert thing.attributes["conditions"] == Attribute(
        ["list", ["object", {"message": "string", "code": "number"}]], computed=True
    )
    assert "md5_hash" not in thing.attributes
    assert "tf_resource_type" not in thing.attributes
    assert thing.blocks["push_config"] == NestedBlock(
        Nesting.LIST,
        Block(
            {
                "push_endpoint": Attribute("string", required=True),
                "state": Attribute("string", computed=True),
            }
        ),
        max_items=1,
    )
    assert thing.blocks["rule"] == NestedBlock(
        Nesting.SET, Block({"key": Attribute("string", required=True)}), min_items=1
    )
    assert thing.blocks["timeouts"].nesting is Nesting.SINGLE


def test_the_provider_and_its_data_sources() -> None:
    schema = jsii.provider_schema(ASSEMBLY, {})
    assert (schema.name, schema.version) == ("example", "1.2.3")
    assert set(schema.provider.attributes) == {"region"}  # `alias` is Terraform's, not its
    assert set(schema.data_sources) == {"example_thing"}
    assert schema.data_sources["example_thing"].attributes["number"].computed


def test_an_unrecognisable_class_is_an_error_not_a_guess() -> None:
    broken = json.loads(json.dumps(ASSEMBLY))
    broken["types"][P + "thing.Thing"]["docs"]["summary"] = "Something else."
    with pytest.raises(ValueError, match="no Terraform type name"):
        jsii.provider_schema(broken, {})


def test_schema_json_round_trip_and_implied_type() -> None:
    schema = jsii.provider_schema(ASSEMBLY, jsii.js_members([JAVASCRIPT]))
    assert from_json(json.loads(json.dumps(to_json(schema)))) == schema
    implied = schema.resources["example_thing"].implied_type()
    assert isinstance(implied, list)
    kind, fields = implied
    assert kind == "object"
    assert isinstance(fields, dict)
    assert fields["push_config"] == [
        "list",
        ["object", {"push_endpoint": "string", "state": "string"}],
    ]
    assert fields["rule"] == ["set", ["object", {"key": "string"}]]
    assert fields["timeouts"] == ["object", {"create": "string"}]


@pytest.mark.parametrize(
    ("description", "values"),
    [
        (
            'Default value: "ALLOW_ALL" Possible values: ["ALLOW_ALL", "ALLOW_INTERNAL_ONLY"].',
            ("ALLOW_ALL", "ALLOW_INTERNAL_ONLY"),
        ),
        ("The amount of memory available for a function.", ()),
        ('Possible values: ["ONE"]', ("ONE",)),
    ],
)
def test_documented_enum(description: str, values: tuple[str, ...]) -> None:
    assert documented_enum(description) == values


def test_read_assembly_follows_a_compressed_redirect() -> None:
    assembly = {"types": {}, "name": "x"}
    files = {
        ".jsii": json.dumps(
            {"schema": "jsii/file-redirect", "compression": "gzip", "filename": ".jsii.gz"}
        ).encode(),
        ".jsii.gz": gzip.compress(json.dumps(assembly).encode()),
    }
    assert wheels.read_assembly(files.__getitem__) == assembly
    assert wheels.read_assembly({".jsii": json.dumps(assembly).encode()}.__getitem__) == assembly


def test_pinned_wheels_are_named_as_pip_names_their_files(tmp_path: Path) -> None:
    requirements = tmp_path / "r.txt"
    requirements.write_text(
        "# why\ncdktn-provider-google==19.0.0 \\\n    --hash=sha256:ab\nA.b-c==1.0\n"
    )
    assert wheels.pinned_wheels(requirements) == ["cdktn_provider_google-19.0.0-", "a_b_c-1.0-"]
