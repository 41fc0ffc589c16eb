//! Client side: listener, request handling, headers, CONNECT, errors.
