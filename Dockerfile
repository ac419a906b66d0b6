# scan-ledger's image: the whole system (`scanledger up`, or its api, worker and projector a container each,
# as compose.yaml runs them) and the BYOC scan worker a customer runs next to their data (`scanledger
# scan-worker`, the default command; compose.byoc.yaml), configured
# by the environment GET /api/v1/scans/:id/deployment-config gives (SCAN_ID, COORDINATOR_URL,
# AUTH_TOKEN) plus the worker's own credentials for the data (e.g. SCANLEDGER_SECRET_… variables).
#   docker build -t scanledger/scan-worker:0.1.0 .
#   docker run --rm -e SCAN_ID -e COORDINATOR_URL -e AUTH_TOKEN -v /data:/data -w /data scanledger/scan-worker:0.1.0
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY api ./api
COPY streams ./streams
COPY projections ./projections
COPY byoc ./byoc
COPY services ./services
RUN pip install . && useradd --create-home --uid 10001 scanner
# a local_dir connector's path is read under SCANLEDGER_DATASTORE_ROOT: mount the data there
ENV SCANLEDGER_DATASTORE_ROOT=/data
USER scanner
ENTRYPOINT ["scanledger"]
CMD ["scan-worker"]
