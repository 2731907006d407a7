"""The stub provider's behaviour, without Terraform: values on the wire, validation, plan, reads."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import msgpack
import pytest
from tfplugin_proto import tfplugin6_5_pb2 as pb

from tools.terraform import derived_values, emulate
from tools.terraform.archive import read_archive_file
from tools.terraform.provider import StubProvider
from tools.terraform.schema import Attribute, Block, NestedBlock, Nesting, ProviderSchema, TypeJson
from tools.terraform.values import UNKNOWN, Dynamic, Unknown, Value, decode, encode, from_json

FUNCTION = Block(
    {
        "id": Attribute("string", optional=True, computed=True),
        "name": Attribute("string", required=True),
        "location": Attribute("string", required=True),
        "project": Attribute("string", optional=True),
        "state": Attribute("string", computed=True),
        "labels": Attribute(["map", "string"], optional=True),
    },
    {
        "service_config": NestedBlock(
            Nesting.LIST,
            Block(
                {
                    "ingress_settings": Attribute(
                        "string",
                        optional=True,
                        description='Possible values: ["ALLOW_ALL", "ALLOW_INTERNAL_ONLY"].',
                    ),
                    "uri": Attribute("string", computed=True),
                    "service": Attribute("string", computed=True),
                }
            ),
            max_items=1,
        )
    },
)
PROJECT = Block(
    {
        "id": Attribute("string", optional=True, computed=True),
        "project_id": Attribute("string", optional=True),
        "number": Attribute("string", computed=True),
        "labels": Attribute(["map", "string"], computed=True),
    }
)
SCHEMA = ProviderSchema(
    "google",
    "7.31.0",
    Block(
        {
            "project": Attribute("string", optional=True),
            "region": Attribute("string", optional=True),
        }
    ),
    {"google_cloudfunctions2_function": FUNCTION},
    {"google_project": PROJECT},
)
DEFAULTS = derived_values.Defaults(project="my-project", region="europe-west1")


def function(ingress: Value = "ALLOW_ALL", name: Value = "hook") -> dict[str, Value]:
    return {
        "id": None,
        "name": name,
        "location": "europe-west1",
        "project": None,
        "state": None,
        "labels": None,
        "service_config": [{"ingress_settings": ingress, "uri": None, "service": None}],
    }


class TestValues:
    def test_cty_unknown_is_a_one_byte_extension(self) -> None:
        assert encode(UNKNOWN) == b"\xd4\x00\x00"
        assert decode(b"\xd4\x00\x00", "string") == UNKNOWN

    def test_an_object_round_trips_with_unknowns_kept_as_received(self) -> None:
        refined = msgpack.ExtType(12, msgpack.packb({1: True}))  # "known not null"
        raw = msgpack.packb({"a": "x", "b": refined, "c": [1, 2.5], "d": None})
        type_: TypeJson = [
            "object",
            {"a": "string", "b": "string", "c": ["list", "number"], "d": "bool"},
        ]
        value = decode(raw, type_)
        assert value == {"a": "x", "b": Unknown(12, refined.data), "c": [1, 2.5], "d": None}
        assert encode(value) == raw

    def test_a_dynamic_value_travels_with_its_type(self) -> None:
        raw = msgpack.packb([b'["list","string"]', ["a"]], use_bin_type=True)
        value = decode(raw, "dynamic")
        assert value == Dynamic(["list", "string"], ["a"])
        assert encode(value) == raw

    def test_state_json_fills_absent_attributes_with_null(self) -> None:
        type_: TypeJson = ["object", {"a": "string", "b": ["list", "number"]}]
        assert from_json({"a": "x"}, type_) == {"a": "x", "b": None}


class TestValidate:
    def test_an_undocumented_value_fails_as_the_provider_says_it(self) -> None:
        problems = emulate.validate(FUNCTION, function("ALLOW_SOME"))
        assert problems == [
            emulate.Diagnostic(
                'expected service_config.0.ingress_settings to be one of ["ALLOW_ALL" '
                '"ALLOW_INTERNAL_ONLY" ""], got ALLOW_SOME',
                path=("service_config", 0, "ingress_settings"),
            )
        ]

    @pytest.mark.parametrize("ingress", ["ALLOW_INTERNAL_ONLY", "", None, UNKNOWN])
    def test_documented_unset_and_unknown_values_pass(self, ingress: Value) -> None:
        assert emulate.validate(FUNCTION, function(ingress)) == []


class TestPlan:
    def test_computed_attributes_are_derived_or_unknown(self) -> None:
        planned = emulate.plan("google_cloudfunctions2_function", FUNCTION, function(), DEFAULTS)
        assert isinstance(planned, dict)
        number = derived_values.project_number("my-project")
        assert planned["id"] == "projects/my-project/locations/europe-west1/functions/hook"
        assert planned["state"] == UNKNOWN
        assert planned["labels"] is None  # optional and unset: not the stub's to invent
        assert planned["service_config"] == [
            {
                "ingress_settings": "ALLOW_ALL",
                "uri": f"https://hook-{number}.europe-west1.run.app",
                "service": "projects/my-project/locations/europe-west1/services/hook",
            }
        ]

    def test_a_value_derived_from_an_unknown_is_unknown(self) -> None:
        planned = emulate.plan(
            "google_cloudfunctions2_function", FUNCTION, function(name=UNKNOWN), DEFAULTS
        )
        assert isinstance(planned, dict)
        assert planned["id"] == UNKNOWN

    def test_destroy_plans_null(self) -> None:
        assert emulate.plan("google_cloudfunctions2_function", FUNCTION, None, DEFAULTS) is None

    def test_project_number_is_stable_and_plausible(self) -> None:
        number = derived_values.project_number("my-project")
        assert (
            number
            == derived_values.project_number("my-project")
            != derived_values.project_number("other")
        )
        assert len(number) == 12
        assert number.isdigit()

    def test_a_data_source_reads_known_values_only(self) -> None:
        state = emulate.read(
            "google_project",
            PROJECT,
            {"id": None, "project_id": None, "number": None, "labels": None},
            DEFAULTS,
        )
        assert state == {
            "id": "projects/my-project",
            "project_id": None,
            "number": derived_values.project_number("my-project"),
            "labels": None,
        }


class TestArchive:
    def test_the_zip_is_real_and_the_same_each_time(self, tmp_path: Path) -> None:
        source = tmp_path / "src"
        (source / "pkg").mkdir(parents=True)
        (source / "main.py").write_text("print('hi')\n")
        (source / "pkg" / "mod.py").write_text("X = 1\n")
        (source / "pkg" / "skip.pyc").write_bytes(b"\0")
        config: dict[str, Value] = {
            "type": "zip",
            "source_dir": str(source),
            "output_path": str(tmp_path / "out.zip"),
            "excludes": ["pkg/*.pyc"],
        }
        first = read_archive_file(config)
        data = (tmp_path / "out.zip").read_bytes()
        assert read_archive_file(config) == first  # byte-identical again
        assert zipfile.ZipFile(tmp_path / "out.zip").namelist() == ["main.py", "pkg/mod.py"]
        assert first["output_md5"] == hashlib.md5(data).hexdigest()  # noqa: S324
        assert (
            first["output_base64sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        )
        assert first["output_size"] == len(data)

    def test_a_missing_directory_is_an_error_and_leaves_no_zip(self, tmp_path: Path) -> None:
        config = {
            "type": "zip",
            "source_dir": str(tmp_path / "nope"),
            "output_path": str(tmp_path / "out.zip"),
        }
        with pytest.raises(FileNotFoundError):
            read_archive_file(config)
        assert not (tmp_path / "out.zip").exists()


class TestProtocol:
    """The gRPC methods' bodies, called directly with the messages Terraform sends."""

    provider = StubProvider(SCHEMA)

    def test_the_schema_terraform_receives(self) -> None:
        response = pb.GetProviderSchema.Response.FromString(
            self.provider.get_provider_schema(pb.GetProviderSchema.Request())
        )
        block = response.resource_schemas["google_cloudfunctions2_function"].block
        attributes = {a.name: a for a in block.attributes}
        assert attributes["name"].required
        assert json.loads(attributes["labels"].type) == ["map", "string"]
        assert attributes["state"].computed
        assert not attributes["state"].optional
        (service_config,) = block.block_types
        assert (service_config.type_name, service_config.nesting, service_config.max_items) == (
            "service_config",
            pb.Schema.NestedBlock.LIST,
            1,
        )

    def test_validate_points_at_the_attribute(self) -> None:
        response = self.provider.validate_resource_config(
            pb.ValidateResourceConfig.Request(
                type_name="google_cloudfunctions2_function",
                config=pb.DynamicValue(msgpack=encode(function("NOPE"))),
            )
        )
        (diagnostic,) = response.diagnostics
        assert diagnostic.severity == pb.Diagnostic.ERROR
        assert [step.WhichOneof("selector") for step in diagnostic.attribute.steps] == [
            "attribute_name",
            "element_key_int",
            "attribute_name",
        ]

    def test_plan_uses_the_provider_block_s_project(self) -> None:
        self.provider.configure_provider(
            pb.ConfigureProvider.Request(
                config=pb.DynamicValue(msgpack=encode({"project": "p1", "region": "us-east1"}))
            )
        )
        response = self.provider.plan_resource_change(
            pb.PlanResourceChange.Request(
                type_name="google_cloudfunctions2_function",
                proposed_new_state=pb.DynamicValue(msgpack=encode(function())),
                config=pb.DynamicValue(msgpack=encode(function())),
            )
        )
        planned = decode(response.planned_state.msgpack, FUNCTION.implied_type())
        assert isinstance(planned, dict)
        assert planned["id"] == "projects/p1/locations/europe-west1/functions/hook"
        assert list(response.diagnostics) == []

    def test_an_unknown_type_and_apply_are_refused_with_a_diagnostic(self) -> None:
        unknown = self.provider.plan_resource_change(
            pb.PlanResourceChange.Request(type_name="google_nope")
        )
        assert unknown.diagnostics[0].summary == "unsupported resource type google_nope"
        applied = self.provider.apply_resource_change(pb.ApplyResourceChange.Request())
        assert "cannot apply" in applied.diagnostics[0].summary
