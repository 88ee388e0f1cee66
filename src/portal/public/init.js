// The Design System's components, started as its documentation shows; every page works without it.
import { initAll } from '/javascripts/govuk-frontend.min.js';
initAll();
