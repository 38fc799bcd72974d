{#- Standard normal CDF through erf (Abramowitz & Stegun 7.1.26, absolute error under 1.5e-7). -#}
{% macro normal_cdf(z) -%}
(0.5 * (1 + sign({{ z }}) * (1 - (
    0.254829592 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2)))
    - 0.284496736 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 2
    + 1.421413741 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 3
    - 1.453152027 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 4
    + 1.061405429 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 5
) * exp(-power({{ z }}, 2) / 2))))
{%- endmacro %}
