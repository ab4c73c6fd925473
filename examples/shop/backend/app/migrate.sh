#!/bin/sh
# Database migrations would run here.
echo "migrations up to date for backend $(cat VERSION)"
