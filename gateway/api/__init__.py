"""gRPC edge: servicers, interceptors and protobuf <-> domain conversion."""
