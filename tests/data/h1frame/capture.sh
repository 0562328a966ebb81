#!/bin/bash
# Records the HTTP/1.x fixtures of tests/test_h1frame.c from real peers on
# loopback: curl as the client, nginx (and python3's http.server for a body
# that ends at the close) as the server, record.py between them writing what
# each side sent.  Not run by the tests; run it here to make the .bin files
# again:  bash tests/data/h1frame/capture.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
web=$(port)
mkdir -p "$work/www"
python3 -c 'import sys; sys.stdout.write("".join("line %04d of a page nginx sends with a Content-Length\n" % i for i in range(60)))' >"$work/www/page.txt"
head -c 3000 "$work/www/page.txt" >"$work/body.txt"
cat >"$work/nginx.conf" <<CONF
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $work;
	proxy_temp_path $work;
	fastcgi_temp_path $work;
	uwsgi_temp_path $work;
	scgi_temp_path $work;
	types { text/plain txt; }
	server {
		listen 127.0.0.1:$web;
		root $work/www;
		location /gzip/ { alias $work/www/; gzip on; gzip_http_version 1.0; gzip_min_length 0; gzip_types text/plain; }
		location = /empty { return 204; }
		location = /post { client_body_in_single_buffer on; proxy_pass http://127.0.0.1:$web/echo; }
		location = /echo { return 200 "got it\n"; }
	}
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
base=http://127.0.0.1

# record NAME CURL-ARGS...: one connection through record.py (URL: its address)
record() {
	name=$1
	shift
	rec=$(port)
	python3 "$here/record.py" "$rec" "$up" "$here/$name" >"$work/ready" &
	while ! grep -q ready "$work/ready" 2>/dev/null; do sleep 0.05; done
	curl -s "${@//URL/$base:$rec}" >/dev/null
	wait
	rm -f "$work/ready"
}

up=$web
etag=$(curl -sI "$base:$web/page.txt" | tr -d '\r' | sed -n 's/^ETag: //Ip')
record length URL/page.txt
record chunked --compressed URL/gzip/page.txt
record head -I URL/page.txt --next URL/page.txt
record notmod -H "If-None-Match: $etag" URL/page.txt --next URL/empty
record keepalive URL/page.txt URL/page.txt URL/gzip/page.txt
record continue -H 'Expect: 100-continue' --data-binary "@$work/body.txt" URL/post
record chunkedreq -H 'Transfer-Encoding: chunked' --data-binary "@$work/body.txt" URL/post
record http10 -0 URL/page.txt
record nolength -0 --compressed URL/gzip/page.txt

up=$(port)
python3 "$here/until_close.py" "$up" &
sleep 0.5
record untilclose URL/
wait
ls -l "$here"/*.bin
