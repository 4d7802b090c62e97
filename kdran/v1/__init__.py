"""Generated gRPC/protobuf code for the kdran.v1 contracts (source: proto/kdran/v1, `make proto`)."""
