-- Claims an Idempotency-Key for the calling transaction and reads its stored answer in one round
-- trip. The advisory lock lasts until the transaction ends (a crashed process releases it with its
-- connection); the read runs after the lock is held and, the function being VOLATILE, with a fresh
-- snapshot, so an answer committed by the previous holder is always seen.
CREATE FUNCTION idempotency_claim(claim_company_id uuid, claim_key text, claim_now timestamptz)
RETURNS TABLE (locked boolean, request_fingerprint bytea, response_status smallint,
               response_content_type text, response_body bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended(claim_company_id::text || ':' || claim_key, 0)) THEN
        RETURN QUERY SELECT false, NULL::bytea, NULL::smallint, NULL::text, NULL::bytea;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT true, k.request_fingerprint, k.response_status, k.response_content_type, k.response_body
        FROM idempotency_keys k
        WHERE k.company_id = claim_company_id AND k.idempotency_key = claim_key
          AND k.expires_at > claim_now;
    IF NOT FOUND THEN
        RETURN QUERY SELECT true, NULL::bytea, NULL::smallint, NULL::text, NULL::bytea;
    END IF;
END
$$;
