-- wrk script for bench/sluice_only.sh: absolute-form requests through the proxy.
--
--   wrk ... -s sluice_only.lua http://PROXY -- ORIGIN PATH MODE [N]
--
-- MODE "unique": PATH<counter>, a new URL every request (scan-miss)
--      "cycle":  PATH<counter mod N + 1>.jpg (image-miss: N distinct files)
--      "static": PATH as is (hit-1k at many connections)
--      "zipf":   PATH<k>, k in 1..N drawn with Zipf(1.0) popularity (hit-distinct)
-- done() prints one machine-readable RESULT line.

function init(args)
   local origin, path, mode, n = args[1], args[2], args[3], tonumber(args[4] or "0")
   local head = "GET http://" .. origin .. path
   local tail = " HTTP/1.1\r\nHost: " .. origin .. "\r\n\r\n"
   local counter = math.random(1, 1e6) * 1000
   if mode == "unique" then
      request = function()
         counter = counter + 1
         return head .. counter .. tail
      end
   elseif mode == "cycle" then
      counter = 0
      request = function()
         counter = counter + 1
         return head .. ((counter - 1) % n + 1) .. ".jpg" .. tail
      end
   elseif mode == "zipf" then
      -- cumulative distribution over ranks 1..n, then a binary search per request
      local cdf, sum = {}, 0
      for k = 1, n do
         sum = sum + 1 / k
         cdf[k] = sum
      end
      for k = 1, n do cdf[k] = cdf[k] / sum end
      request = function()
         local u, lo, hi = math.random(), 1, n
         while lo < hi do
            local mid = math.floor((lo + hi) / 2)
            if cdf[mid] < u then lo = mid + 1 else hi = mid end
         end
         return head .. lo .. tail
      end
   else
      local r = head .. tail
      request = function() return r end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect + e.read + e.write + e.timeout))
end
