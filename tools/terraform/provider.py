"""The stub provider process: one provider's schema served over Terraform's plugin protocol v6.

    python -m tools.terraform.provider SCHEMA_JSON

It listens on a free loopback port and prints `{"port": N}` once it serves; Terraform reaches it
through TF_REATTACH_PROVIDERS. It stops on SIGTERM, and when its standard input closes: the
process that started it holds the other end, so it never outlives that process, even a killed
one. The behaviour behind each call is in `emulate.py`; this module only translates.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from typing import Any, Protocol

import grpc
from tfplugin_proto import tfplugin6_5_pb2 as pb

from tools.terraform import emulate
from tools.terraform.archive import read_archive_file
from tools.terraform.derived_values import Defaults
from tools.terraform.schema import Block, NestedBlock, Nesting, ProviderSchema
from tools.terraform.values import Value, decode, encode, from_json
from tools.terraform.wheels import load_schema

_NESTING = {
    Nesting.SINGLE: pb.Schema.NestedBlock.SINGLE,
    Nesting.LIST: pb.Schema.NestedBlock.LIST,
    Nesting.SET: pb.Schema.NestedBlock.SET,
}
_NO_APPLY = "the stub provider only validates and plans: it cannot apply, import or call functions"


class _Message(Protocol):
    def SerializeToString(self) -> bytes: ...


def block_message(block: Block) -> pb.Schema.Block:
    return pb.Schema.Block(
        attributes=[
            pb.Schema.Attribute(
                name=name,
                type=json.dumps(attribute.type).encode(),
                description=attribute.description,
                required=attribute.required,
                optional=attribute.optional,
                computed=attribute.computed,
            )
            for name, attribute in sorted(block.attributes.items())
        ],
        block_types=[
            _nested_message(name, nested) for name, nested in sorted(block.blocks.items())
        ],
        description=block.description,
    )


def _nested_message(name: str, nested: NestedBlock) -> pb.Schema.NestedBlock:
    return pb.Schema.NestedBlock(
        type_name=name,
        block=block_message(nested.block),
        nesting=_NESTING[nested.nesting],
        min_items=nested.min_items,
        max_items=nested.max_items,
    )


def _diagnostic(problem: emulate.Diagnostic) -> pb.Diagnostic:
    steps = [
        pb.AttributePath.Step(element_key_int=step)
        if isinstance(step, int)
        else pb.AttributePath.Step(attribute_name=step)
        for step in problem.path
    ]
    return pb.Diagnostic(
        severity=pb.Diagnostic.ERROR,
        summary=problem.summary,
        detail=problem.detail,
        attribute=pb.AttributePath(steps=steps) if steps else None,
    )


def _error(summary: str, detail: str = "") -> list[pb.Diagnostic]:
    return [pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)]


class StubProvider:
    def __init__(self, schema: ProviderSchema) -> None:
        self._schema = schema
        self._defaults = Defaults()
        self._types: dict[tuple[str, str], Any] = {}
        response = pb.GetProviderSchema.Response(
            provider=pb.Schema(block=block_message(schema.provider)),
            resource_schemas={
                name: pb.Schema(block=block_message(block))
                for name, block in schema.resources.items()
            },
            data_source_schemas={
                name: pb.Schema(block=block_message(block))
                for name, block in schema.data_sources.items()
            },
            server_capabilities=pb.ServerCapabilities(plan_destroy=True),
        )
        # Terraform asks for the schema in every command: serialise it once.
        self._schema_bytes: bytes = response.SerializeToString()

    # Values

    def _block(self, kind: str, name: str) -> Block | None:
        blocks: Mapping[str, Block] = (
            self._schema.resources if kind == "resource" else self._schema.data_sources
        )
        return self._schema.provider if kind == "provider" else blocks.get(name)

    def _decode(self, kind: str, name: str, block: Block, value: pb.DynamicValue) -> Value:
        type_ = self._types.setdefault((kind, name), block.implied_type())
        if value.msgpack:
            return decode(value.msgpack, type_)
        if value.json:
            return from_json(json.loads(value.json), type_)
        return None

    # The protocol's calls

    def get_metadata(self, _: pb.GetMetadata.Request) -> pb.GetMetadata.Response:
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(plan_destroy=True),
            resources=[
                pb.GetMetadata.ResourceMetadata(type_name=name) for name in self._schema.resources
            ],
            data_sources=[
                pb.GetMetadata.DataSourceMetadata(type_name=name)
                for name in self._schema.data_sources
            ],
        )

    def get_provider_schema(self, _: pb.GetProviderSchema.Request) -> bytes:
        return self._schema_bytes

    def validate_provider_config(
        self, request: pb.ValidateProviderConfig.Request
    ) -> pb.ValidateProviderConfig.Response:
        config = self._decode("provider", "", self._schema.provider, request.config)
        problems = emulate.validate(self._schema.provider, config)
        return pb.ValidateProviderConfig.Response(diagnostics=map(_diagnostic, problems))

    def validate_resource_config(
        self, request: pb.ValidateResourceConfig.Request
    ) -> pb.ValidateResourceConfig.Response:
        block = self._block("resource", request.type_name)
        if block is None:
            return pb.ValidateResourceConfig.Response(
                diagnostics=_error(f"unsupported resource type {request.type_name}")
            )
        config = self._decode("resource", request.type_name, block, request.config)
        problems = emulate.validate(block, config)
        return pb.ValidateResourceConfig.Response(diagnostics=map(_diagnostic, problems))

    def validate_data_resource_config(
        self, request: pb.ValidateDataResourceConfig.Request
    ) -> pb.ValidateDataResourceConfig.Response:
        block = self._block("data", request.type_name)
        if block is None:
            return pb.ValidateDataResourceConfig.Response(
                diagnostics=_error(f"unsupported data source {request.type_name}")
            )
        config = self._decode("data", request.type_name, block, request.config)
        problems = emulate.validate(block, config)
        return pb.ValidateDataResourceConfig.Response(diagnostics=map(_diagnostic, problems))

    def configure_provider(
        self, request: pb.ConfigureProvider.Request
    ) -> pb.ConfigureProvider.Response:
        config = self._decode("provider", "", self._schema.provider, request.config)
        self._defaults = emulate.defaults(config)
        return pb.ConfigureProvider.Response()

    def upgrade_resource_state(
        self, request: pb.UpgradeResourceState.Request
    ) -> pb.UpgradeResourceState.Response:
        block = self._block("resource", request.type_name)
        if block is None:
            return pb.UpgradeResourceState.Response(
                diagnostics=_error(f"unsupported resource type {request.type_name}")
            )
        type_ = self._types.setdefault(("resource", request.type_name), block.implied_type())
        state = from_json(json.loads(request.raw_state.json or b"null"), type_)
        return pb.UpgradeResourceState.Response(
            upgraded_state=pb.DynamicValue(msgpack=encode(state))
        )

    def read_resource(self, request: pb.ReadResource.Request) -> pb.ReadResource.Response:
        # Nothing to ask an API: the resource is as Terraform last recorded it.
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def plan_resource_change(
        self, request: pb.PlanResourceChange.Request
    ) -> pb.PlanResourceChange.Response:
        block = self._block("resource", request.type_name)
        if block is None:
            return pb.PlanResourceChange.Response(
                diagnostics=_error(f"unsupported resource type {request.type_name}")
            )
        proposed = self._decode("resource", request.type_name, block, request.proposed_new_state)
        planned = emulate.plan(request.type_name, block, proposed, self._defaults)
        return pb.PlanResourceChange.Response(
            planned_state=pb.DynamicValue(msgpack=encode(planned)),
            planned_private=request.prior_private,
        )

    def apply_resource_change(
        self, _: pb.ApplyResourceChange.Request
    ) -> pb.ApplyResourceChange.Response:
        return pb.ApplyResourceChange.Response(diagnostics=_error(_NO_APPLY))

    def import_resource_state(
        self, _: pb.ImportResourceState.Request
    ) -> pb.ImportResourceState.Response:
        return pb.ImportResourceState.Response(diagnostics=_error(_NO_APPLY))

    def read_data_source(self, request: pb.ReadDataSource.Request) -> pb.ReadDataSource.Response:
        block = self._block("data", request.type_name)
        if block is None:
            return pb.ReadDataSource.Response(
                diagnostics=_error(f"unsupported data source {request.type_name}")
            )
        config = self._decode("data", request.type_name, block, request.config)
        if request.type_name == "archive_file" and isinstance(config, dict):
            state: Value = read_archive_file(config)
        else:
            state = emulate.read(request.type_name, block, config, self._defaults)
        return pb.ReadDataSource.Response(state=pb.DynamicValue(msgpack=encode(state)))

    def get_functions(self, _: pb.GetFunctions.Request) -> pb.GetFunctions.Response:
        return pb.GetFunctions.Response()

    def call_function(self, _: pb.CallFunction.Request) -> pb.CallFunction.Response:
        return pb.CallFunction.Response(diagnostics=_error(_NO_APPLY))

    def stop_provider(self, _: pb.StopProvider.Request) -> pb.StopProvider.Response:
        return pb.StopProvider.Response()

    def handler(self) -> Any:
        """The gRPC service `tfplugin6.Provider`; a call that fails answers INTERNAL."""
        calls: dict[str, tuple[Any, Callable[[Any], Any]]] = {
            "GetMetadata": (pb.GetMetadata.Request, self.get_metadata),
            "GetProviderSchema": (pb.GetProviderSchema.Request, self.get_provider_schema),
            "ValidateProviderConfig": (
                pb.ValidateProviderConfig.Request,
                self.validate_provider_config,
            ),
            "ValidateResourceConfig": (
                pb.ValidateResourceConfig.Request,
                self.validate_resource_config,
            ),
            "ValidateDataResourceConfig": (
                pb.ValidateDataResourceConfig.Request,
                self.validate_data_resource_config,
            ),
            "ConfigureProvider": (pb.ConfigureProvider.Request, self.configure_provider),
            "UpgradeResourceState": (pb.UpgradeResourceState.Request, self.upgrade_resource_state),
            "ReadResource": (pb.ReadResource.Request, self.read_resource),
            "PlanResourceChange": (pb.PlanResourceChange.Request, self.plan_resource_change),
            "ApplyResourceChange": (pb.ApplyResourceChange.Request, self.apply_resource_change),
            "ImportResourceState": (pb.ImportResourceState.Request, self.import_resource_state),
            "ReadDataSource": (pb.ReadDataSource.Request, self.read_data_source),
            "GetFunctions": (pb.GetFunctions.Request, self.get_functions),
            "CallFunction": (pb.CallFunction.Request, self.call_function),
            "StopProvider": (pb.StopProvider.Request, self.stop_provider),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                _guarded(name, call),
                request_deserializer=request_type.FromString,
                response_serializer=_serialize,
            )
            for name, (request_type, call) in calls.items()
        }
        return grpc.method_handlers_generic_handler("tfplugin6.Provider", handlers)


def _serialize(response: _Message | bytes) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def _guarded(name: str, call: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    def run(request: Any, context: Any) -> Any:
        try:
            return call(request)
        except Exception as error:
            traceback.print_exc()  # to the log the starter keeps
            context.abort(grpc.StatusCode.INTERNAL, f"stub provider {name}: {error!r}")
            raise  # abort raises; this keeps type checkers and readers sure of it

    return run


def _set_on_eof(stop: threading.Event) -> None:
    sys.stdin.buffer.read()
    stop.set()


def serve(schema_path: Path) -> None:
    provider = StubProvider(load_schema(schema_path))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        # The google schema is tens of MB: lift gRPC's 4 MB default in both directions.
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    server.add_generic_rpc_handlers((provider.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # EOF on stdin: whoever started this process is gone.
    threading.Thread(target=_set_on_eof, args=(stop,), daemon=True).start()
    print(json.dumps({"port": port}), flush=True)
    stop.wait()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
