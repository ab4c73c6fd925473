#!/bin/sh
# A tiny HTTP backend: answers every request with its greeting.
echo "backend $(cat VERSION) listening on :8080"
while true; do
  printf 'HTTP/1.0 200 OK\r\n\r\n%s\n' "${GREETING:-hello}" | nc -l -p 8080
done
