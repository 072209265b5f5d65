"""The descriptor set the edge's transcoder loads: meshmart's, plus google.rpc's status types.

`make proto` writes gen/descriptors/meshmart.protoset with the meshmart contracts and
their imports. The transcoder's ``convert_grpc_status`` also has to print the
``details`` of a status (google.rpc.BadRequest with its field violations, ...) as
JSON, so it needs google/rpc/status.proto and google/rpc/error_details.proto in the
same set. They come from googleapis-common-protos (what the kit's error mapping uses
to build those details), appended with their imports.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2

EXTRA_FILES: tuple[FileDescriptor, ...] = (status_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR)


def edge_descriptor_set(base: descriptor_pb2.FileDescriptorSet) -> bytes:
    merged = descriptor_pb2.FileDescriptorSet()
    merged.CopyFrom(base)
    have = {f.name for f in merged.file}

    def add(file: FileDescriptor) -> None:
        if file.name in have:
            return
        for dependency in file.dependencies:  # imports first, as protoc orders them
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        merged.file.append(proto)
        have.add(file.name)

    for file in EXTRA_FILES:
        add(file)
    return merged.SerializeToString(deterministic=True)
