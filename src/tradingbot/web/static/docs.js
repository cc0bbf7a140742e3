// Swagger UI over the bot's own OpenAPI document; "Try it out" sends the CSRF token.
"use strict";
window.addEventListener("load", () => {
  const root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) return;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  window.SwaggerUIBundle({
    url: root.dataset.url,
    domNode: root,
    deepLinking: true,
    requestInterceptor: (request) => {
      if (csrf) request.headers["X-CSRF-Token"] = csrf;
      return request;
    },
  });
});
