-- POST /v1/images/generations with "async": true, with the key in $CONDUIT_KEY.
wrk.method = "POST"
wrk.body = '{"prompt":"A beautiful sunset over mountains","model":"dall-e-2","size":"256x256","async":true}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CONDUIT_KEY")
